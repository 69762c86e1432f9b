import math

import numpy as np
import pytest
import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix
from skimage.transform import SimilarityTransform

from scene4d.metrics.camera import absolute_trajectory_error, relative_pose_error, umeyama


def _rotation(axis_angle):
    return axis_angle_to_rotation_matrix(torch.tensor([axis_angle], dtype=torch.float64))[0]


def _trajectory(num=12, seed=0):
    """(T, 4, 4) world-to-camera matrices of a wobbling arc."""
    generator = torch.Generator().manual_seed(seed)
    c2w = torch.eye(4, dtype=torch.float64).repeat(num, 1, 1)
    for i in range(num):
        c2w[i, :3, :3] = _rotation((0.1 * i, 0.05 * math.sin(i), 0.02 * i))
        c2w[i, :3, 3] = torch.tensor([math.cos(0.3 * i), 0.2 * i, math.sin(0.3 * i)], dtype=torch.float64)
    c2w[:, :3, 3] += 0.01 * torch.randn(num, 3, generator=generator, dtype=torch.float64)
    return torch.linalg.inv(c2w)


def _similarity_transformed(viewmats, scale, rotation, translation):
    """The same cameras in a world mapped by x -> scale * R x + t (camera rotations follow R)."""
    world = torch.eye(4, dtype=torch.float64)
    world[:3, :3], world[:3, 3] = rotation, translation
    c2w = torch.linalg.inv(viewmats)
    c2w[:, :3, 3] *= scale
    return torch.linalg.inv(world @ c2w)


def test_umeyama_recovers_a_known_similarity_and_matches_scikit_image():
    source = torch.randn(20, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rotation = _rotation((0.3, -1.2, 0.7))
    target = 2.5 * source @ rotation.T + torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    scale, fitted_rotation, translation = umeyama(source, target)
    assert scale.item() == pytest.approx(2.5)
    torch.testing.assert_close(fitted_rotation, rotation)
    noisy = target + 0.1 * torch.randn(20, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    scale, fitted_rotation, translation = umeyama(source, noisy)
    reference = SimilarityTransform.from_estimate(source.numpy(), noisy.numpy())
    ours = np.eye(4)
    ours[:3, :3], ours[:3, 3] = scale * fitted_rotation.numpy(), translation.numpy()
    np.testing.assert_allclose(ours, reference.params, atol=1e-9)


def test_umeyama_never_returns_a_reflection():
    source = torch.randn(10, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mirrored = source * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    _, rotation, _ = umeyama(source, mirrored)
    assert torch.linalg.det(rotation).item() == pytest.approx(1.0)


def test_ate_and_rpe_vanish_for_a_similarity_transformed_trajectory():
    target = _trajectory()
    pred = _similarity_transformed(target, 0.4, _rotation((0.5, 0.2, -0.9)), torch.tensor([3.0, 1.0, -2.0]).double())
    assert absolute_trajectory_error(pred, target).item() == pytest.approx(0.0, abs=1e-9)
    translation, rotation = relative_pose_error(pred, target)
    assert translation.item() == pytest.approx(0.0, abs=1e-9)
    assert rotation.item() == pytest.approx(0.0, abs=1e-5)
    assert absolute_trajectory_error(pred, target, align="se3").item() > 0.1


def test_ate_of_a_known_offset_without_alignment():
    target = _trajectory()
    c2w = torch.linalg.inv(target)
    c2w[:, :3, 3] += torch.tensor([0.3, 0.0, 0.4], dtype=torch.float64)
    assert absolute_trajectory_error(torch.linalg.inv(c2w), target, align="none").item() == pytest.approx(0.5)
    assert absolute_trajectory_error(torch.linalg.inv(c2w), target, align="se3").item() == pytest.approx(0, abs=1e-9)


def test_rpe_of_a_known_rotation_error():
    target = _trajectory()
    c2w = torch.linalg.inv(target)
    c2w[0, :3, :3] = c2w[0, :3, :3] @ _rotation((0.0, 0.0, math.radians(2.0)))  # frame 0 turned by 2 degrees
    _, rotation = relative_pose_error(torch.linalg.inv(c2w), target, align="none")
    assert rotation.item() == pytest.approx(2.0 / math.sqrt(target.shape[0] - 1), rel=1e-6)  # only pair (0, 1) errs


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(T, 4, 4\)"):
        absolute_trajectory_error(torch.eye(4), torch.eye(4))
    with pytest.raises(ValueError, match="delta"):
        relative_pose_error(_trajectory(4), _trajectory(4), delta=4)
    with pytest.raises(ValueError, match="align"):
        absolute_trajectory_error(_trajectory(4), _trajectory(4), align="sim2")
