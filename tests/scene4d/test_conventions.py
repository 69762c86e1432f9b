import math

import pytest
import torch

from scene4d.conventions import (
    backproject_depth,
    frame_index,
    normalized_time,
    pixel_centers,
    project_points,
    quat_to_rotmat,
    world_to_camera,
)


def test_quat_to_rotmat_known_rotation_and_normalisation():
    half = math.pi / 4  # 90 degrees about z
    quat = torch.tensor([[math.cos(half), 0.0, 0.0, math.sin(half)]], dtype=torch.float64) * 3.0
    rot = quat_to_rotmat(quat)[0]
    expected = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(rot, expected, atol=1e-12)


def test_quat_to_rotmat_is_orthonormal_and_rejects_bad_shape():
    rot = quat_to_rotmat(torch.randn(50, 4, dtype=torch.float64))
    assert torch.allclose(rot @ rot.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(50, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(50, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 4\), got \(3, 3\)"):
        quat_to_rotmat(torch.zeros(3, 3))


def test_pixel_centers_top_left_is_half():
    pix = pixel_centers(2, 3)
    assert pix.shape == (2, 3, 2)
    assert pix[0, 0].tolist() == [0.5, 0.5]
    assert pix[1, 2].tolist() == [2.5, 1.5]


def test_project_points_pinhole_and_principal_point():
    K = torch.tensor([[[100.0, 0.0, 32.0], [0.0, 80.0, 24.0], [0.0, 0.0, 1.0]]])
    viewmat = torch.eye(4)[None].clone()
    viewmat[0, 2, 3] = 1.0  # camera one unit behind the world origin
    points = torch.tensor([[0.0, 0.0, 1.0], [0.2, -0.1, 3.0]])
    pixels, depths = project_points(points, viewmat, K)
    assert torch.allclose(depths[0], torch.tensor([2.0, 4.0]))
    assert torch.allclose(pixels[0, 0], torch.tensor([32.0, 24.0]))
    assert torch.allclose(pixels[0, 1], torch.tensor([32.0 + 100 * 0.2 / 4, 24.0 - 80 * 0.1 / 4]))


def test_backproject_then_project_round_trip():
    torch.manual_seed(0)
    K = torch.tensor([[60.0, 0.0, 20.0], [0.0, 60.0, 15.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    rot = quat_to_rotmat(torch.randn(1, 4, dtype=torch.float64))[0]
    camtoworld = torch.eye(4, dtype=torch.float64)
    camtoworld[:3, :3], camtoworld[:3, 3] = rot, torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    depth = 1.0 + torch.rand(30, 40, dtype=torch.float64)
    world = backproject_depth(depth, K, camtoworld)
    viewmat = torch.linalg.inv(camtoworld)[None]
    pixels, depths = project_points(world.reshape(-1, 3), viewmat, K[None])
    assert torch.allclose(depths[0], depth.reshape(-1), atol=1e-10)
    assert torch.allclose(pixels[0], pixel_centers(30, 40, dtype=torch.float64).reshape(-1, 2), atol=1e-9)
    assert torch.allclose(world_to_camera(world.reshape(-1, 3), viewmat)[0, :, 2], depth.reshape(-1), atol=1e-10)


def test_normalized_time_round_trip_and_edges():
    assert normalized_time(0, 11).item() == 0.0
    assert normalized_time(10, 11).item() == 1.0
    assert normalized_time(0, 1).item() == 0.0
    assert frame_index(normalized_time(7, 11), 11).item() == pytest.approx(7.0)
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        normalized_time(0, 0)
