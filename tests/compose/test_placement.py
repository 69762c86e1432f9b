import math

import numpy as np
import pytest
import torch

from compose.placement import (PlacementConfig, depth_pairs, fit_placement, occlusion_order_accuracy, place_objects,
                               render_object_depth, robust_log_scale, scale_about_cameras, weighted_median)
from compose.scene import Scene, SceneObject
from scene4d.contracts.cameras import Cameras
from scene4d.contracts.depth import DepthMaps
from scene4d.contracts.masks import ObjectMasks
from scene4d.dynamic_object import DynamicObject
from scene4d.gaussians import Gaussians
from scene4d.motion.skinning import ControlPointDeformation
from scene4d.motion.trajectory import RigidTrajectory

W, H, T = 40, 32, 4
K = torch.tensor([[40.0, 0.0, 20.0], [0.0, 40.0, 16.0], [0.0, 0.0, 1.0]])


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny renders: thread start-up costs more than it saves on a shared machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blob(n=150, radius=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    directions = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1)
    points = directions * radius * torch.rand(n, 1, generator=g).pow(1 / 3)
    return points


def make_object(position, points=None, log_scale=0.0, color=(0.8, 0.2, 0.1), knots=4):
    points = blob() if points is None else points
    gaussians = Gaussians.from_points(points, torch.tensor(color).expand(points.shape[0], 3), sh_degree=0,
                                      scale=0.06, opacity=0.9)
    deformation = ControlPointDeformation(points[:4].clone(), knots, radius=0.2)
    trajectory = RigidTrajectory(knots, torch.tensor(position, dtype=torch.float32).expand(knots, 3))
    with torch.no_grad():
        trajectory.log_scale_knots.fill_(log_scale)
    return DynamicObject(gaussians, deformation, trajectory)


def cameras(centers):
    viewmats = torch.eye(4).repeat(len(centers), 1, 1)
    viewmats[:, :3, 3] = -torch.as_tensor(centers, dtype=torch.float32)
    return viewmats, K.expand(len(centers), 3, 3).clone()


def render_all(scene, viewmats, Ks, object_id):
    colors, depths = [], []
    for f in range(viewmats.shape[0]):
        out, _ = scene.render(f / (scene.num_frames - 1), viewmats[f:f + 1], Ks[f:f + 1], W, H, backend="torch",
                              include_background=False, object_ids=[object_id])
        colors.append(out.colors[0])
        depths.append(out.depths[0])
    return torch.stack(colors), torch.stack(depths)


def test_weighted_median_matches_numpy_on_repeated_values():
    values = torch.tensor([3.0, 1.0, 2.0, 10.0])
    assert weighted_median(values, torch.ones(4)) == 2.0
    # Weight 3 on 10 is as if it appeared three times: [1, 2, 3, 10, 10, 10] -> lower median 3.
    assert weighted_median(values, torch.tensor([1.0, 1.0, 1.0, 3.0])) == 3.0


def test_robust_log_scale_ignores_outliers_where_the_mean_does_not():
    g = torch.Generator().manual_seed(0)
    obj = 2.0 + torch.rand(400, generator=g)
    scene = 1.7 * obj * (1 + 0.01 * torch.randn(400, generator=g))
    scene[:100] *= 3.0  # a quarter of the pixels bleed onto a far wall
    log_k, inlier = robust_log_scale(obj, scene, threshold=0.1)
    assert abs(math.exp(log_k) / 1.7 - 1) < 0.002
    assert abs((scene / obj).mean() / 1.7 - 1) > 0.2
    assert not inlier[:100].any() and inlier[100:].float().mean() > 0.95


def test_robust_log_scale_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        robust_log_scale(torch.tensor([1.0, -1.0]), torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match=r"\(P,\)"):
        robust_log_scale(torch.ones(3), torch.ones(4))


def test_fit_recovers_known_scale_and_placement_keeps_input_views():
    depth, k = 4.0, 1.6
    viewmats, Ks = cameras([[0.0, 0.0, 0.0]] * T)
    truth = Scene(None, [SceneObject(1, "a", make_object([0.0, 0.0, depth]))], T)
    model = make_object([0.0, 0.0, depth / k], log_scale=-math.log(k))  # same image, k times too close
    scene = Scene(None, [SceneObject(1, "a", model)], T)
    true_depth, true_alpha = render_object_depth(truth, 1, viewmats, Ks, W, H, backend="torch")
    obj_depth, obj_alpha = render_object_depth(scene, 1, viewmats, Ks, W, H, backend="torch")
    mask = true_alpha > 0.5
    fit = fit_placement(obj_depth, obj_alpha, mask, true_depth, torch.ones_like(true_depth),
                        PlacementConfig(backend="torch"))
    assert fit.reliable and abs(fit.scale / k - 1) < 0.01
    assert torch.allclose(fit.frame_residuals, torch.zeros(T, dtype=torch.float64), atol=0.01)

    placed, residual = scale_about_cameras(scene.objects[0], fit.scale, viewmats, T)
    assert residual < 1e-6
    before_rgb, before_depth = render_all(scene, viewmats, Ks, 1)
    after_rgb, after_depth = render_all(Scene(None, [placed], T), viewmats, Ks, 1)
    assert torch.allclose(after_rgb, before_rgb, atol=1e-5)
    assert torch.allclose(after_depth, before_depth * fit.scale, atol=1e-4)
    # The input object is untouched.
    assert torch.allclose(scene.objects[0].model.trajectory.log_scale_knots, torch.tensor(-math.log(k)))


@pytest.mark.parametrize("moving, time_offset", [(True, 0.0), (False, 0.2)])
def test_placement_about_a_moving_camera_with_edit_and_time_offset(moving, time_offset):
    # Camera centres on a straight line: the trajectory spline absorbs the per-frame centres exactly. (A time
    # offset freezes the object at the clip's ends, which no spline follows along a moving camera.)
    viewmats, Ks = cameras([[0.1 * f * moving, -0.05 * f * moving, 0.02 * f * moving] for f in range(T)])
    model = make_object([0.0, 0.0, 3.0])
    with torch.no_grad():
        model.trajectory.translation_knots.add_(torch.linspace(0, 0.3, 4)[:, None])
    edit = torch.eye(4)
    edit[:3, :3] = 1.2 * torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    edit[:3, 3] = torch.tensor([0.1, 0.0, 1.0])
    obj = SceneObject(1, "a", model, edit=edit, time_offset=time_offset)
    placed, residual = scale_about_cameras(obj, 1.3, viewmats, T)
    assert residual < 1e-5
    before_rgb, before_depth = render_all(Scene(None, [obj], T), viewmats, Ks, 1)
    after_rgb, after_depth = render_all(Scene(None, [placed], T), viewmats, Ks, 1)
    assert torch.allclose(after_rgb, before_rgb, atol=1e-4)
    assert torch.allclose(after_depth, before_depth * 1.3, atol=1e-3)


def test_placement_about_a_curved_camera_path_reports_its_residual():
    viewmats, Ks = cameras([[0.3 * math.sin(2.0 * f), 0.0, 0.0] for f in range(6)])
    obj = SceneObject(1, "a", make_object([0.0, 0.0, 3.0]))
    _, residual = scale_about_cameras(obj, 1.5, viewmats, 6)
    assert residual > 1e-3  # 4 knots cannot follow a zigzag of 6 camera centres


def test_place_objects_uses_depth_maps_and_ignores_objects_without_masks():
    viewmats, Ks = cameras([[0.0, 0.0, 0.0]] * T)
    truth = Scene(None, [SceneObject(1, "a", make_object([0.2, 0.0, 5.0]))], T)
    true_depth, true_alpha = render_object_depth(truth, 1, viewmats, Ks, W, H, backend="torch")
    depth = DepthMaps(true_depth.numpy(), (true_alpha > 0.5).float().numpy())
    masks = ObjectMasks((true_alpha > 0.5).numpy()[None], [1])
    cams = Cameras(Ks.double().numpy(), viewmats.double().numpy(), W, H)
    scene = Scene(None, [SceneObject(1, "a", make_object([0.1, 0.0, 2.5], log_scale=math.log(0.5))),
                         SceneObject(2, "b", make_object([0.0, 0.0, 9.0]))], T)
    placed, fits = place_objects(scene, masks, depth, cams, PlacementConfig(backend="torch"))
    assert set(fits) == {1} and abs(fits[1].scale - 2.0) < 0.02
    assert placed.objects[1] is scene.objects[1]
    placed_depth, _ = render_object_depth(placed, 1, viewmats, Ks, W, H, backend="torch")
    inside = true_alpha > 0.5
    assert torch.allclose(placed_depth[inside], true_depth[inside], rtol=0.02)


def ground(y, z_range=(2.0, 6.0), n_x=40, n_z=80):
    zs, xs = torch.meshgrid(torch.linspace(*z_range, n_z), torch.linspace(-2.0, 2.0, n_x), indexing="ij")
    points = torch.stack([xs.flatten(), torch.full((n_x * n_z,), y), zs.flatten()], dim=1)
    return Gaussians.from_points(points, torch.full((n_x * n_z, 3), 0.4), sh_degree=0, scale=0.05, opacity=0.95)


def look_at(center, target):
    """World-to-camera matrix (OpenCV axes, world +y down) of a camera at ``center`` looking at ``target``."""
    center, target = torch.tensor(center), torch.tensor(target)
    forward = torch.nn.functional.normalize(target - center, dim=0)
    right = torch.nn.functional.normalize(torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0]), forward), dim=0)
    rotation = torch.stack([right, torch.linalg.cross(forward, right), forward])
    viewmat = torch.eye(4)
    viewmat[:3, :3], viewmat[:3, 3] = rotation, -rotation @ center
    return viewmat


def box_points(size=0.3, n=6):
    axis = torch.linspace(-size, size, n)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    return grid[(grid.abs() == size).any(dim=1)]


def test_contact_target_recovers_scale_from_the_ground_below_the_object():
    # A box standing on the ground (y = 0.8; world +y points down), seen from above at about 30 degrees.
    viewmats = look_at([0.0, -1.2, 0.5], [0.0, 0.8, 4.0]).expand(T, 4, 4).clone()
    Ks = K.expand(T, 3, 3).clone()
    depth, k, floor = 4.0, 1.25, 0.8
    center = [0.0, floor - 0.3, depth]
    truth = Scene(ground(floor), [SceneObject(1, "box", make_object(center, points=box_points()))], T)
    wrong, _ = scale_about_cameras(truth.objects[0], 1.0 / k, viewmats, T)  # exact (tested above)
    scene = Scene(ground(floor), [wrong], T)
    _, alpha = render_object_depth(truth, 1, viewmats, Ks, W, H, backend="torch")
    # A sharp mask, as a segmentation gives (alpha > 0.5 would reach a blurred pixel below the contact).
    masks = ObjectMasks((alpha > 0.9).numpy()[None], [1])
    cams = Cameras(Ks.double().numpy(), viewmats.double().numpy(), W, H)
    _, fits = place_objects(scene, masks, None, cams, PlacementConfig(target="contact", backend="torch"))
    # The ground's rendered depth is pulled a few % towards the camera at this grazing angle (nearer
    # Gaussians overlap the pixel first), hence 5 % rather than the 1 % of the depth-map target.
    assert fits[1].reliable and abs(fits[1].scale / k - 1) < 0.05, fits[1]


def test_depth_pairs_checks_shapes_and_target():
    z = torch.ones(2, 4, 4)
    with pytest.raises(ValueError, match="confidence"):
        depth_pairs(z, z, z > 0, z, torch.ones(2, 4, 5), PlacementConfig())
    with pytest.raises(ValueError, match="target"):
        depth_pairs(z, z, z > 0, z, z, PlacementConfig(target="nope"))


def test_occlusion_order_accuracy_detects_a_wrong_depth_order():
    viewmats, Ks = cameras([[0.0, 0.0, 0.0]] * 2)
    front = SceneObject(1, "front", make_object([-0.15, 0.0, 3.0], color=(1, 0, 0)))
    back = SceneObject(2, "back", make_object([0.15, 0.0, 4.0], points=blob(seed=1), color=(0, 0, 1)))
    scene = Scene(None, [front, back], 2)
    cams = Cameras(Ks.double().numpy(), viewmats.double().numpy(), W, H)
    labels = torch.stack([scene.render(float(f), viewmats[f:f + 1], Ks[f:f + 1], W, H, with_labels=True,
                                       backend="torch")[1][0] for f in range(2)])
    masks = ObjectMasks(np.stack([(labels == 1).numpy(), (labels == 2).numpy()]), [1, 2])
    good = occlusion_order_accuracy(scene, masks, cams, backend="torch")
    assert good["coverage"] == {1: 1.0, 2: 1.0} and good["order"] == 1.0 and good["contested_pixels"] > 10

    # Pull the back object in front of the other one along the camera rays: same image alone, wrong order.
    moved, _ = scale_about_cameras(back, 0.5, viewmats, 2)
    swapped = Scene(None, [front, moved], 2)
    bad = occlusion_order_accuracy(swapped, masks, cams, backend="torch")
    assert bad["order"] == 0.0
    swapped_labels = torch.stack([swapped.render(float(f), viewmats[f:f + 1], Ks[f:f + 1], W, H, with_labels=True,
                                                 backend="torch")[1][0] for f in range(2)])
    expected = float(((labels == 1) & (swapped_labels == 1)).sum() / (labels == 1).sum())
    assert bad["coverage"][1] == pytest.approx(expected) and expected < 0.95
    assert bad["coverage"][2] == 1.0


def test_place_objects_reads_only_the_fit_frames():
    viewmats, Ks = cameras([[0.0, 0.0, 0.0]] * T)
    truth = Scene(None, [SceneObject(1, "a", make_object([0.2, 0.0, 5.0]))], T)
    true_depth, true_alpha = render_object_depth(truth, 1, viewmats, Ks, W, H, backend="torch")
    misleading = true_depth.clone()
    misleading[1:] *= 4.0  # every frame but the first claims the object is four times as far
    depth = DepthMaps(misleading.numpy(), (true_alpha > 0.5).float().numpy())
    masks = ObjectMasks((true_alpha > 0.5).numpy()[None], [1])
    cams = Cameras(Ks.double().numpy(), viewmats.double().numpy(), W, H)
    scene = Scene(None, [SceneObject(1, "a", make_object([0.1, 0.0, 2.5], log_scale=math.log(0.5)))], T)
    config = PlacementConfig(backend="torch", min_pixels=8)
    _, fits = place_objects(scene, masks, depth, cams, config, fit_frames=[0])
    assert abs(fits[1].scale - 2.0) < 0.02
    _, misled = place_objects(scene, masks, depth, cams, config)
    assert abs(misled[1].scale - 8.0) < 0.1
