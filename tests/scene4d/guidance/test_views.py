import pytest
import torch

from scene4d.guidance.config import GuidanceConfig
from scene4d.guidance.views import orbit_viewmats, sample_orbit_offsets


def _look_at(position, target, up_hint):
    """World-to-camera (OpenCV) of a camera at ``position`` looking at ``target`` with ``up_hint`` up."""
    forward = torch.nn.functional.normalize(target - position, dim=0)
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up_hint), dim=0)
    down = torch.linalg.cross(forward, right)
    rotation = torch.stack([right, down, forward])  # rows: camera axes in world
    viewmat = torch.eye(4, dtype=position.dtype)
    viewmat[:3, :3] = rotation
    viewmat[:3, 3] = -rotation @ position
    return viewmat


CENTER = torch.tensor([0.5, -0.2, 3.0], dtype=torch.float64)
UP = torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64)  # OpenCV world: y down


def _centres(viewmats):
    return torch.linalg.inv(viewmats)[:, :3, 3]


def test_zero_offsets_give_the_reference_camera_aimed_at_the_centre():
    reference = _look_at(torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64), CENTER, UP)
    out = orbit_viewmats(reference, CENTER, torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    assert torch.allclose(out[0], reference, atol=1e-12)


def test_orbits_keep_distance_and_look_at_the_centre():
    torch.manual_seed(0)
    reference = torch.eye(4, dtype=torch.float64)  # at the origin, looking down +z, slightly off the centre
    elevation = torch.empty(16, dtype=torch.float64).uniform_(-60, 60)
    azimuth = torch.empty(16, dtype=torch.float64).uniform_(-180, 180)
    out = orbit_viewmats(reference, CENTER, elevation, azimuth)
    in_camera = out[:, :3, :3] @ CENTER + out[:, :3, 3]
    distance = CENTER.norm()
    assert torch.allclose(in_camera, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64) * distance, atol=1e-9)
    rotations = out[:, :3, :3]
    assert torch.allclose(rotations @ rotations.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(16, 3, 3),
                          atol=1e-12)
    assert torch.allclose(torch.linalg.det(rotations), torch.ones(16, dtype=torch.float64))


def test_offset_directions_up_and_right():
    origin = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64)
    reference = _look_at(origin, CENTER, UP)
    right, up = reference[0, :3], -reference[1, :3]
    distance = CENTER.norm()
    quarter = torch.tensor([90.0], dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    above = _centres(orbit_viewmats(reference, CENTER, quarter, zero))[0]
    assert torch.allclose(above, CENTER + distance * up, atol=1e-9)
    to_the_right = _centres(orbit_viewmats(reference, CENTER, zero, quarter))[0]
    assert torch.allclose(to_the_right, CENTER + distance * right, atol=1e-9)
    behind = _centres(orbit_viewmats(reference, CENTER, zero, 2 * quarter))[0]
    assert torch.allclose(behind, 2 * CENTER, atol=1e-9)


def test_orbit_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        orbit_viewmats(torch.eye(3), torch.zeros(3), torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="two"):
        orbit_viewmats(torch.eye(4), torch.ones(3), torch.zeros(2), torch.zeros(3))


def test_sampled_offsets_stay_in_the_configured_ranges():
    config = GuidanceConfig(elevation_range=[-10.0, 20.0], azimuth_range=[30.0, 40.0])
    elevation, azimuth = sample_orbit_offsets(config, 500, torch.Generator().manual_seed(0))
    assert elevation.min() >= -10 and elevation.max() <= 20 and elevation.max() - elevation.min() > 25
    assert azimuth.min() >= 30 and azimuth.max() <= 40 and azimuth.max() - azimuth.min() > 9
