import math

import pytest
import torch

from scene4d.conventions import quat_to_rotmat
from scene4d.motion import spline
from scene4d.motion.skinning import ControlPointDeformation, skinning_weights
from scene4d.motion.trajectory import RigidTrajectory


def test_bspline_partition_of_unity_and_locality():
    times = torch.linspace(0, 1, 101, dtype=torch.float64)
    basis = spline.bspline_basis(times, 7)
    assert torch.allclose(basis.sum(1), torch.ones(101, dtype=torch.float64))
    assert ((basis > 0).sum(1) <= 4).all() and (basis >= 0).all()


def test_bspline_is_c2_continuous_at_knots():
    torch.manual_seed(0)
    values = torch.randn(6, dtype=torch.float64)
    knot = 1.0 / 3.0  # a segment boundary for 6 knots (3 segments)

    def derivatives(t):
        time = torch.tensor([t], dtype=torch.float64, requires_grad=True)
        value = spline.evaluate(values, time).sum()
        (first,) = torch.autograd.grad(value, time, create_graph=True)
        (second,) = torch.autograd.grad(first.sum(), time)
        return value.item(), first.item(), second.item()

    left, right = derivatives(knot - 1e-12), derivatives(knot + 1e-12)
    assert left == pytest.approx(right, rel=1e-6, abs=1e-6)
    assert abs(left[2]) > 1e-3  # the curve really bends there, so the check is not vacuous


def test_fit_values_reproduces_a_cubic_curve():
    times = torch.linspace(0, 1, 40, dtype=torch.float64)
    samples = torch.stack([times**3 - times, 2 * times, torch.ones_like(times)], dim=1)
    values = spline.fit_values(samples, times, 8, smoothness=0.0)
    assert torch.allclose(spline.evaluate(values, times), samples, atol=1e-8)


def test_skinning_weights_sum_to_one_and_prefer_nearest():
    points = torch.tensor([[0.0, 0, 0], [1.0, 0, 0]])
    controls = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [5.0, 0, 0]])
    indices, weights = skinning_weights(points, controls, torch.full((3,), 0.5), k=2)
    assert torch.allclose(weights.sum(1), torch.ones(2))
    assert indices[0, 0] == 0 and indices[1, 0] == 1 and weights[0, 0] > 0.8


def test_skinning_weights_match_a_dense_formula_in_value_and_gradient():
    torch.manual_seed(0)
    points = torch.randn(30, 3, dtype=torch.float64, requires_grad=True)
    controls = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    radii = torch.rand(10, dtype=torch.float64).add(0.5).requires_grad_()
    indices, weights = skinning_weights(points, controls, radii, k=3)
    # The reference: all N x M RBF logits, the k nearest kept by masking the others to -inf before the softmax.
    dist2 = ((points[:, None] - controls[None]) ** 2).sum(-1)
    logits = -dist2 / (2 * radii[None] ** 2)
    nearest = torch.zeros_like(dist2, dtype=torch.bool).scatter(1, dist2.detach().topk(3, largest=False).indices, True)
    dense = torch.softmax(logits.masked_fill(~nearest, float("-inf")), dim=1)
    assert torch.allclose(weights, dense.gather(1, indices), atol=1e-12)
    probe = torch.randn(30, 3, dtype=torch.float64)
    grads = torch.autograd.grad((weights * probe).sum(), (points, controls, radii))
    reference = torch.autograd.grad((dense.gather(1, indices) * probe).sum(), (points, controls, radii))
    for grad, ref in zip(grads, reference):
        assert ref.abs().max() > 1e-3 and torch.allclose(grad, ref, atol=1e-10)


def test_zero_deformation_is_identity_and_shared_rigid_motion_is_rigid():
    torch.manual_seed(0)
    points = torch.randn(50, 3, dtype=torch.float64)
    quats = torch.nn.functional.normalize(torch.randn(50, 4, dtype=torch.float64), dim=-1)
    deform = ControlPointDeformation(torch.randn(8, 3, dtype=torch.float64), num_knots=5, radius=0.7).double()
    times = torch.tensor([0.0, 0.4, 1.0], dtype=torch.float64)
    moved, moved_q = deform(points, quats, times)
    assert torch.allclose(moved, points.expand(3, -1, -1), atol=1e-12)
    assert torch.allclose(moved_q, quats.expand(3, -1, -1), atol=1e-12)

    # The same rotation about the origin for every control point: R (x - c) + c + T with T = R c - c.
    angle = torch.tensor([0.0, 0.0, 0.3], dtype=torch.float64)
    rot = quat_to_rotmat(torch.tensor([math.cos(0.15), 0, 0, math.sin(0.15)], dtype=torch.float64))
    with torch.no_grad():
        deform.rotation_knots[:] = angle
        centers = deform.control_points
        deform.translation_knots[:] = centers @ rot.T - centers
    moved, moved_q = deform(points, quats, times)
    assert torch.allclose(moved[1], points @ rot.T, atol=1e-10)
    assert torch.allclose(quat_to_rotmat(moved_q[1]), rot @ quat_to_rotmat(quats), atol=1e-10)


def test_trajectory_matches_its_matrices_and_follows_positions():
    torch.manual_seed(0)
    times = torch.linspace(0, 1, 9)
    positions = torch.stack([times, times**2, 2 + 0 * times], dim=1)
    trajectory = RigidTrajectory.from_positions(times, positions, num_knots=6)
    with torch.no_grad():
        trajectory.rotation_knots.normal_(std=0.3)
        trajectory.log_scale_knots.fill_(math.log(2.0))
    points = torch.randn(1, 5, 3).expand(9, -1, -1)
    quats = torch.tensor([1.0, 0, 0, 0]).expand(9, 5, 4)
    world, world_q, world_s = trajectory(points, quats, torch.ones(5, 3), times)
    matrices = trajectory.matrices(times)
    expected = torch.einsum("bij,bnj->bni", matrices[:, :3, :3], points) + matrices[:, None, :3, 3]
    assert torch.allclose(world, expected, atol=1e-5)
    assert torch.allclose(world_s, torch.full_like(world_s, 2.0))
    assert torch.allclose(2.0 * quat_to_rotmat(world_q), matrices[:, None, :3, :3].expand(-1, 5, -1, -1), atol=1e-5)
    # With zero rotation and unit scale the origin follows the fitted positions (smoothly, not exactly).
    plain = RigidTrajectory.from_positions(times, positions, num_knots=6)
    origin, _, _ = plain(torch.zeros(9, 1, 3), quats[:, :1], torch.ones(1, 3), times)
    assert (origin[:, 0] - positions).abs().max() < 0.01
