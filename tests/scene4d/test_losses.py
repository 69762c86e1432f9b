import math

import pytest
import torch

from scene4d import losses
from scene4d.conventions import quat_to_rotmat


def test_rgb_l1_hand_value_and_mask_normalisation():
    pred = torch.zeros(1, 2, 2, 3)
    target = torch.zeros(1, 2, 2, 3)
    target[0, 0, 0] = 0.6  # one pixel off by 0.6 in every channel
    assert losses.rgb_l1(pred, target).item() == pytest.approx(0.6 / 4)
    mask = torch.zeros(1, 2, 2, 1)
    mask[0, 0, :] = 1.0  # two pixels, one of them wrong
    assert losses.rgb_l1(pred, target, mask).item() == pytest.approx(0.3)


def test_dssim_zero_for_identical_and_positive_otherwise():
    torch.manual_seed(0)
    image = torch.rand(1, 16, 16, 3)
    assert losses.dssim(image, image).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.dssim(image, 1.0 - image).item() > 0.3


def test_mask_loss_ignores_invalid_pixels():
    alpha = torch.tensor([0.0, 1.0, 0.5, 0.0]).reshape(1, 2, 2, 1)
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0]).reshape(1, 2, 2, 1)
    assert losses.mask_loss(alpha, mask).item() == pytest.approx((1.0 + 0.25) / 4)
    valid = torch.tensor([0.0, 1.0, 1.0, 1.0]).reshape(1, 2, 2, 1)  # the first pixel is hidden by another object
    assert losses.mask_loss(alpha, mask, valid).item() == pytest.approx(0.25 / 3)


def test_depth_loss_is_scale_shift_invariant():
    torch.manual_seed(0)
    target = 1.0 + torch.rand(2, 8, 8, 1)
    weights = torch.ones_like(target)
    assert losses.depth_scale_shift_invariant(3.0 * target - 0.7, target, weights).item() == pytest.approx(0.0, abs=1e-5)
    scale, shift = losses.align_scale_shift(2.0 * target + 1.0, target, weights)
    assert torch.allclose(scale, torch.full((2,), 0.5), atol=1e-5) and torch.allclose(shift, torch.full((2,), -0.5), atol=1e-5)
    noisy = target + 0.1 * torch.randn_like(target)
    assert losses.depth_scale_shift_invariant(noisy, target, weights).item() > 0.01


def test_track_reprojection_huber_values():
    projected = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]]])
    observed = torch.zeros(1, 3, 2)
    visibility = torch.tensor([[1, 1, 0]])
    # errors 0 and 5 (visible): Huber(0) = 0, Huber(5) = 5 - 1 = 4 with delta 2 -> mean 2
    assert losses.track_reprojection(projected, observed, visibility).item() == pytest.approx(2.0)
    visibility = torch.tensor([[0, 0, 1]])  # error 1 < delta: 0.5 * 1 / 2
    assert losses.track_reprojection(projected, observed, visibility).item() == pytest.approx(0.25)


def test_arap_zero_for_rigid_motion_positive_for_stretch():
    torch.manual_seed(0)
    rest = torch.randn(10, 3, dtype=torch.float64)
    neighbours = losses.knn_indices(rest, 3)
    assert neighbours.shape == (10, 3) and not (neighbours == torch.arange(10)[:, None]).any()
    rot = quat_to_rotmat(torch.tensor([math.cos(0.2), 0.0, math.sin(0.2), 0.0], dtype=torch.float64))
    deformed = (rest @ rot.T + torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))[None]
    rotations = rot.expand(1, 10, 3, 3)
    assert losses.arap(rest, deformed, rotations, neighbours).item() == pytest.approx(0.0, abs=1e-20)
    stretched = deformed * torch.tensor([1.5, 1.0, 1.0], dtype=torch.float64)
    assert losses.arap(rest, stretched, rotations, neighbours).item() > 1e-3


def test_scale_anisotropy_and_temporal_smoothness_values():
    scales = torch.tensor([[1.0, 1.0, 1.0], [20.0, 1.0, 1.0]])
    assert losses.scale_anisotropy(scales, max_ratio=10.0).item() == pytest.approx(5.0)
    line = torch.arange(5.0)[:, None] * torch.tensor([1.0, 2.0])  # constant velocity: no acceleration
    assert losses.temporal_smoothness(line).item() == 0.0
    bump = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0])  # second differences 1, -2, 1
    assert losses.temporal_smoothness(bump).item() == pytest.approx(2.0)
