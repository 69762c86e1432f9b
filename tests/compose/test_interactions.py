import math

import pytest
import torch

from compose.interactions import (InteractionConfig, fibonacci_directions, interaction_losses, median_spacing,
                                  object_points, outer_surface, penetration_fraction, prepare_interactions,
                                  signed_distance, weighted_total)
from compose.scene import Scene, SceneObject
from scene4d.dynamic_object import DynamicObject
from scene4d.gaussians import Gaussians
from scene4d.motion.hexplane import HexPlaneDeformation
from scene4d.motion.skinning import ControlPointDeformation
from scene4d.motion.trajectory import RigidTrajectory

T = 4
RADIUS = 0.3
FLOOR = 0.8  # world +y points down; the cameras are above the floor
CAMERAS = torch.tensor([[0.0, -1.0, 0.0], [0.5, -1.0, 0.0]])


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ball(n=400, seed=0):
    """A solid ball of Gaussian centres, with one exactly at each pole (where it touches things)."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1)
    poles = RADIUS * torch.cat([torch.eye(3), -torch.eye(3)])
    return torch.cat([directions * RADIUS * torch.rand(n, 1, generator=g).pow(1 / 3), poles])


def make_object(start, end=None, points=None):
    """A solid ball moving linearly from ``start`` to ``end`` over the clip."""
    points = ball() if points is None else points
    gaussians = Gaussians.from_points(points, torch.full((points.shape[0], 3), 0.5), sh_degree=0, scale=0.03,
                                      opacity=0.9)
    deformation = ControlPointDeformation(points[:4].clone(), 4, radius=0.2)
    start = torch.tensor(start)
    end = start if end is None else torch.tensor(end)
    # A uniform cubic B-spline with 4 knots passes through knots 1 and 2 at t = 0 and 1.
    trajectory = RigidTrajectory(4, start + torch.linspace(-1, 2, 4)[:, None] * (end - start))
    return DynamicObject(gaussians, deformation, trajectory)


def floor():
    zs, xs = torch.meshgrid(torch.linspace(1.5, 4.5, 31), torch.linspace(-1.5, 1.5, 31), indexing="ij")
    points = torch.stack([xs.flatten(), torch.full((31 * 31,), FLOOR), zs.flatten()], dim=1)
    return Gaussians.from_points(points, torch.full((31 * 31, 3), 0.3), sh_degree=0, scale=0.05, opacity=0.9)


def scene_of(*models, background=None):
    return Scene(background, [SceneObject(i + 1, f"o{i + 1}", m) for i, m in enumerate(models)], T)


def losses_and_grads(scene, config=None):
    config = config or InteractionConfig()
    setup = prepare_interactions(scene, CAMERAS, config)
    terms = interaction_losses(scene, setup, list(range(T)), config)
    total = weighted_total(terms, config)
    if total.requires_grad:  # all-zero terms may not reach the models at all
        total.backward()
    grads = [o.model.trajectory.translation_knots.grad for o in scene.objects]
    return setup, terms, [torch.zeros(4, 3) if g is None else g for g in grads]


@pytest.mark.parametrize("kind", ["control_points", "hexplane"])
def test_object_points_place_a_subset_as_the_scene_does(kind):
    model = make_object([0.1, 0.2, 3.0], [0.5, 0.0, 3.5])
    if kind == "hexplane":
        box = torch.tensor([[-RADIUS] * 3, [RADIUS] * 3])
        model.deformation = HexPlaneDeformation(box, [4], 4, channels=4, hidden=8)
    with torch.no_grad():
        model.trajectory.rotation_knots.copy_(0.3 * torch.randn(4, 3, generator=torch.Generator().manual_seed(0)))
        if kind == "hexplane":
            model.deformation.decoder[-1].weight.normal_(0.0, 0.1)
        else:
            model.deformation.translation_knots.normal_(0.0, 0.05)
    edit = torch.eye(4)
    edit[:3, :3] = 0.7 * torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    edit[:3, 3] = torch.tensor([0.3, -0.1, 0.2])
    scene = Scene(None, [SceneObject(5, "o", model, edit=edit, time_offset=0.2)], T)
    index = torch.tensor([7, 3, 100, 250])
    points = object_points(scene, 5, index, [0, 2, 3])
    for row, frame in enumerate([0, 2, 3]):
        posed = scene.posed(frame / (T - 1), include_background=False).means
        assert torch.allclose(points[row], posed[index], atol=1e-6)


def test_fibonacci_directions_cover_the_sphere_evenly():
    d = fibonacci_directions(64)
    assert torch.allclose(d.norm(dim=1), torch.ones(64), atol=1e-6)
    assert d.mean(0).norm() < 0.02


def test_signed_distance_gradient_on_a_plane_matches_finite_differences():
    g = torch.Generator().manual_seed(0)
    normal = torch.nn.functional.normalize(torch.tensor([0.2, -1.0, 0.3], dtype=torch.float64), dim=0)
    tangent = torch.nn.functional.normalize(torch.linalg.cross(normal, torch.tensor([1.0, 0, 0]).double()), dim=0)
    other = torch.linalg.cross(normal, tangent)
    uv = torch.rand(40, 2, generator=g, dtype=torch.float64) - 0.5
    surface = (uv[:, :1] * tangent + uv[:, 1:] * other).requires_grad_(True)
    normals = normal.expand(40, 3)
    queries = (0.3 * (torch.rand(5, 3, generator=g, dtype=torch.float64) - 0.5)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda q, p: signed_distance(q, p, normals, 4)[0], (queries, surface))
    sd, _ = signed_distance(queries, surface, normals, 4)
    assert torch.allclose(sd, queries.detach() @ normal)


def test_signed_distance_checks_shapes():
    with pytest.raises(ValueError, match=r"queries: expected \(Q, 3\), got \(4, 2\)"):
        signed_distance(torch.zeros(4, 2), torch.zeros(3, 3), torch.zeros(3, 3), 2)
    with pytest.raises(ValueError, match="surface, normals"):
        signed_distance(torch.zeros(4, 3), torch.zeros(3, 3), torch.zeros(2, 3), 2)


def test_signed_distance_of_a_torus_which_is_not_star_shaped():
    # Its centroid lies outside it, in the hole: orienting normals away from the centroid would fail.
    g = torch.Generator().manual_seed(1)
    u, v = 2 * math.pi * torch.rand(2, 3000, generator=g)
    major, minor = 0.3, 0.1
    points = torch.stack([(major + minor * v.cos()) * u.cos(), (major + minor * v.cos()) * u.sin(),
                          minor * v.sin()], dim=1)
    index, normals = outer_surface(points, fibonacci_directions(32), 4 * median_spacing(points), 8)
    angles = torch.linspace(0, 2 * math.pi, 13)[:-1]
    tube = torch.stack([major * angles.cos(), major * angles.sin(), torch.zeros(12)], dim=1)
    outside = torch.cat([torch.zeros(1, 3), 1.6 * tube, tube + torch.tensor([0.0, 0.0, 0.2])])
    sd_in, _ = signed_distance(tube, points[index], normals, 4)
    sd_out, _ = signed_distance(outside, points[index], normals, 4)
    assert (sd_in < -0.07).all() and (sd_in > -0.13).all()  # the tube's centre line is `minor` deep
    assert (sd_out > 0).all()
    assert sd_out[0] == pytest.approx(major - minor, abs=0.03)  # the hole's centre


def test_penetration_loss_is_zero_apart_and_pushes_a_out_of_b():
    apart = scene_of(make_object([0.0, 0.0, 3.0]), make_object([0.7, 0.0, 3.0], points=ball(seed=1)))
    _, terms, _ = losses_and_grads(apart)
    assert terms["penetration"] == 0.0

    values = []
    for distance in (0.45, 0.3):
        scene = scene_of(make_object([0.0, 0.0, 3.0]), make_object([distance, 0.0, 3.0], points=ball(seed=1)))
        _, terms, (grad_a, grad_b) = losses_and_grads(scene)
        grad_a, grad_b = grad_a.sum(0), grad_b.sum(0)  # as for a translation over the whole clip
        values.append(terms["penetration"].item())
        # Gradient descent moves A away from B (-x) and B away from A (+x).
        assert grad_a[0] > 3 * grad_a[1:].abs().max()
        assert -grad_b[0] > 3 * grad_b[1:].abs().max()
    assert 0 < values[0] < values[1]


def test_background_penetration_is_zero_on_the_floor_and_pushes_a_sunk_object_up():
    resting = scene_of(make_object([0.0, FLOOR - RADIUS, 3.0]), background=floor())
    _, terms, _ = losses_and_grads(resting)
    assert terms["background_penetration"] == 0.0

    sunk = scene_of(make_object([0.0, FLOOR - RADIUS + 0.12, 3.0]), background=floor())
    _, terms, (grad,) = losses_and_grads(sunk)
    grad = grad.sum(0)
    assert terms["background_penetration"] > 0
    assert grad[1] > 3 * grad[[0, 2]].abs().max()  # descent moves it up (-y)


def test_contact_keeps_a_resting_object_on_the_floor_until_it_clearly_leaves():
    resting = scene_of(make_object([0.0, FLOOR - RADIUS, 3.0]), background=floor())
    setup, terms, _ = losses_and_grads(resting)
    assert len(setup.contacts) == 1 and setup.contacts[0].active.all()
    assert terms["contact"] == 0.0

    # With a subset of the Gaussians as queries, the contact still names the object's lowest Gaussians.
    subset = prepare_interactions(resting, CAMERAS, InteractionConfig(max_queries=64))
    heights = resting.objects[0].model.gaussians.get_means()[:, 1].detach()
    queries = subset.samples[1][:subset.num_queries[1]]
    assert queries.numel() == 64 and subset.samples[1].numel() == 406
    lowest = heights[queries].max()
    assert (heights[subset.samples[1][subset.contacts[0].rows]] >= lowest - 0.02 * subset.extents[1]).all()

    # Drifts up by 0.05 (within the release distance, 0.15 x extent ~ 0.09): pulled back down.
    drifting = scene_of(make_object([0.0, FLOOR - RADIUS, 3.0], [0.0, FLOOR - RADIUS - 0.05, 3.0]),
                        background=floor())
    setup, terms, (grad,) = losses_and_grads(drifting)
    grad = grad.sum(0)
    assert setup.contacts[0].active.all() and terms["contact"] > 0
    assert -grad[1] > 3 * grad[[0, 2]].abs().max()  # descent moves it down (+y)

    # Jumps off by 0.6: the contact ends once the gap passes the release distance.
    jumping = scene_of(make_object([0.0, FLOOR - RADIUS, 3.0], [0.0, FLOOR - RADIUS - 0.6, 3.0]),
                       background=floor())
    setup, _, _ = losses_and_grads(jumping)
    assert setup.contacts[0].active.tolist() == [True, False, False, False]

    # Floating from the start, well above the floor: no contact at all.
    floating = scene_of(make_object([0.0, FLOOR - RADIUS - 0.3, 3.0]), background=floor())
    setup, terms, _ = losses_and_grads(floating)
    assert setup.contacts == [] and terms["contact"] == 0.0


def test_anchors_hold_objects_in_contact_together():
    together = scene_of(make_object([0.0, 0.0, 3.0], [0.2, 0.0, 3.0]),
                        make_object([0.61, 0.0, 3.0], [0.81, 0.0, 3.0], points=ball(seed=1)))
    setup, terms, _ = losses_and_grads(together)
    assert len(setup.anchors) == 1 and setup.anchors[0].active.all()
    assert terms["anchors"] < 1e-10

    drifting = scene_of(make_object([0.0, 0.0, 3.0]),
                        make_object([0.61, 0.0, 3.0], [0.66, 0.0, 3.0], points=ball(seed=1)))
    setup, terms, (grad_a, grad_b) = losses_and_grads(drifting)
    assert setup.anchors[0].active.all() and terms["anchors"] > 0
    # At the end of the clip descent pulls B back towards A (-x) and A towards B; a translation of both over
    # the whole clip is free (only the change of the offsets during the contact is penalised).
    assert grad_b[-1, 0] > 3 * grad_b[-1, 1:].abs().max()
    assert -grad_a[-1, 0] > 3 * grad_a[-1, 1:].abs().max()
    assert grad_a.sum(0).abs().max() < 1e-6 and grad_b.sum(0).abs().max() < 1e-6

    apart = scene_of(make_object([0.0, 0.0, 3.0]), make_object([1.0, 0.0, 3.0], points=ball(seed=1)))
    assert prepare_interactions(apart, CAMERAS, InteractionConfig()).anchors == []


def shell(n=600, seed=0):
    """A hollow sphere of Gaussian centres, like a fitted object's surface."""
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1) * RADIUS


def test_penetration_fraction_matches_the_analytic_overlap():
    a_points, b_points = shell(seed=0), shell(seed=1)
    distance = 0.3
    scene = scene_of(make_object([0.0, 0.0, 3.0], points=a_points),
                     make_object([distance, 0.0, 3.0], points=b_points),
                     background=floor())
    fractions = penetration_fraction(scene, 0.0, CAMERAS)
    inside_b = float(((a_points - torch.tensor([distance, 0.0, 0.0])).norm(dim=1) < RADIUS).float().mean())
    inside_a = float(((b_points + torch.tensor([distance, 0.0, 0.0])).norm(dim=1) < RADIUS).float().mean())
    assert fractions[(1, 2)] == pytest.approx(inside_b, abs=0.04)
    assert fractions[(2, 1)] == pytest.approx(inside_a, abs=0.04)
    assert fractions[(1, 0)] == 0.0 and fractions[(2, 0)] == 0.0  # high above the floor

    sunk = scene_of(make_object([0.0, FLOOR - RADIUS + 0.2, 3.0], points=a_points), background=floor())
    below = float((a_points[:, 1] > RADIUS - 0.2).float().mean())
    assert penetration_fraction(sunk, 0.0, CAMERAS)[(1, 0)] == pytest.approx(below, abs=0.04)
