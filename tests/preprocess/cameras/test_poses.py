import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from preprocess.cameras.poses import anchor_world, interpolate_poses
from scene4d.conventions import project_points


def _pose(rotvec, centre) -> np.ndarray:
    viewmat = np.eye(4)
    viewmat[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix().T  # camera-to-world rotation -> world-to-camera
    viewmat[:3, 3] = -viewmat[:3, :3] @ np.asarray(centre, dtype=float)
    return viewmat


def test_missing_poses_are_slerped_and_lerped_between_neighbours_and_held_at_the_ends():
    viewmats = np.stack([_pose([0, 0, 0], [0, 0, 0]), np.eye(4), np.eye(4), _pose([0, 0.3, 0], [3, 0, 0]),
                         np.eye(4)])
    known = np.array([True, False, False, True, False])
    filled = interpolate_poses(viewmats, known)
    np.testing.assert_allclose(filled[known], viewmats[known])
    for t, fraction in ((1, 1 / 3), (2, 2 / 3)):
        np.testing.assert_allclose(filled[t], _pose([0, 0.3 * fraction, 0], [3 * fraction, 0, 0]), atol=1e-12)
    np.testing.assert_allclose(filled[4], viewmats[3])


def test_a_single_known_pose_is_copied_everywhere():
    viewmats = np.tile(np.eye(4), (3, 1, 1))
    viewmats[1] = _pose([0.1, 0.2, 0.3], [1, 2, 3])
    filled = interpolate_poses(viewmats, np.array([False, True, False]))
    np.testing.assert_allclose(filled, np.repeat(viewmats[1:2], 3, axis=0), atol=1e-12)


def test_interpolation_rejects_no_known_pose():
    with pytest.raises(ValueError, match="at least one"):
        interpolate_poses(np.tile(np.eye(4), (2, 1, 1)), np.zeros(2, bool))


def test_anchoring_keeps_every_projection_and_puts_the_first_camera_at_the_origin():
    rng = np.random.default_rng(0)
    viewmats = np.stack([_pose(rng.normal(0, 0.2, 3), rng.normal(0, 1, 3)) for _ in range(4)])
    points = rng.normal(0, 1, (20, 3)) + viewmats[0, :3, :3].T @ np.array([0, 0, 8.0]) + np.linalg.inv(
        viewmats[0])[:3, 3]
    anchored, moved = anchor_world(viewmats, points, scale=2.5)
    np.testing.assert_allclose(anchored[0], np.eye(4), atol=1e-12)
    Ks = torch.tensor([[[300.0, 0, 160], [0, 300, 120], [0, 0, 1]]], dtype=torch.float64).expand(4, 3, 3)
    before, depth_before = project_points(torch.as_tensor(points), torch.as_tensor(viewmats), Ks)
    after, depth_after = project_points(torch.as_tensor(moved), torch.as_tensor(anchored), Ks)
    np.testing.assert_allclose(after.numpy(), before.numpy(), atol=1e-9)
    np.testing.assert_allclose(depth_after.numpy(), depth_before.numpy() / 2.5, atol=1e-9)
    with pytest.raises(ValueError, match="scale"):
        anchor_world(viewmats, points, scale=float("nan"))
