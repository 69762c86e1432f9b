import json
import math

import numpy as np
import pytest
import torch

from compose.camera_paths import (EVALUATION_ANGLES, bullet_time_path, evaluation_views, fixed_path, input_path,
                                  look_at, orbit_path, path_from_json, rotate_about, scale_intrinsics, world_up)
from scene4d.conventions import project_points
from scene4d.errors import InputError

W, H = 40, 30
K = torch.tensor([[35.0, 0.0, 20.0], [0.0, 35.0, 15.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
UP = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)  # a z-up world
CENTER = torch.tensor([0.5, -0.2, 0.3], dtype=torch.float64)


def reference_camera(position=(0.5, -5.2, 0.3)):
    """A camera at ``position`` looking at CENTER, upright in the z-up world."""
    return look_at(torch.tensor([position], dtype=torch.float64), CENTER[None], UP)[0]


def camera_center(viewmats):
    return torch.linalg.inv(viewmats)[..., :3, 3]


def test_look_at_identity_and_projection():
    # OpenCV axes: a camera at the origin looking along +z with up = -y is the identity.
    eye = look_at(torch.zeros(1, 3), torch.tensor([[0.0, 0.0, 2.0]]), torch.tensor([0.0, -1.0, 0.0]))
    assert torch.equal(eye[0], torch.eye(4))
    viewmat = reference_camera()
    pixels, depths = project_points(torch.stack([CENTER, CENTER + 0.1 * UP]), viewmat[None], K[None])
    assert torch.allclose(pixels[0, 0], K[:2, 2])
    assert depths[0, 0] == pytest.approx(5.0)
    assert pixels[0, 1, 1] < K[1, 2]  # what is up in the world is up (smaller row) in the image
    assert torch.allclose(viewmat[:3, :3] @ viewmat[:3, :3].T, torch.eye(3, dtype=torch.float64))


def test_look_at_rejects_degenerate_input():
    with pytest.raises(ValueError, match="parallel"):
        look_at(torch.zeros(1, 3), torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([0.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match="equals its target"):
        look_at(torch.zeros(1, 3), torch.zeros(1, 3), UP.float())
    with pytest.raises(ValueError, match=r"\(F, 3\)"):
        look_at(torch.zeros(3), torch.zeros(3), UP.float())


def test_world_up_is_minus_the_mean_camera_y_axis():
    positions = torch.tensor([[0.0, -5.0, 0.0], [1.0, -5.0, 0.5], [-1.0, -4.0, 0.2]], dtype=torch.float64)
    viewmats = look_at(positions, torch.zeros(3, 3, dtype=torch.float64), UP)
    # Tilted cameras' y axes are not vertical, but they stay in the vertical plane of each view direction and
    # average to a direction close to -up; for level cameras (looking horizontally) it is exact.
    level = look_at(positions, positions + torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), UP)
    assert torch.allclose(world_up(level), UP, atol=1e-12)
    assert torch.dot(world_up(viewmats), UP) > math.cos(math.radians(10))
    with pytest.raises(ValueError, match=r"\(T, 4, 4\)"):
        world_up(torch.eye(4))


def test_rotate_about_zero_is_exact_and_known_angles():
    viewmat = reference_camera()
    zeros = torch.zeros(1, dtype=torch.float64)
    assert torch.equal(rotate_about(viewmat[None], CENTER, UP, zeros, zeros)[0], viewmat)

    # Azimuth +90 about z (counter-clockwise from above): the camera at -y of the centre goes to +x of it.
    turned = rotate_about(viewmat[None], CENTER, UP, zeros, torch.tensor([90.0], dtype=torch.float64))[0]
    assert torch.allclose(camera_center(turned), CENTER + torch.tensor([5.0, 0.0, 0.0], dtype=torch.float64))
    # Elevation +30: the camera rises by 5 sin 30 and comes 5 (1 - cos 30) closer horizontally.
    raised = rotate_about(viewmat[None], CENTER, UP, torch.tensor([30.0], dtype=torch.float64), zeros)[0]
    expected = CENTER + torch.tensor([0.0, -5.0 * math.cos(math.pi / 6), 2.5], dtype=torch.float64)
    assert torch.allclose(camera_center(raised), expected)
    # Rigid motion about the centre: the centre stays where it was in the image, at the same depth.
    for moved in (turned, raised):
        pixels, depths = project_points(CENTER[None], moved[None], K[None])
        assert torch.allclose(pixels[0, 0], K[:2, 2])
        assert depths[0, 0] == pytest.approx(5.0)


def test_rotate_about_a_camera_right_above_the_center():
    viewmat = look_at(CENTER[None] + 3 * UP, CENTER[None], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))[0]
    out = rotate_about(viewmat[None], CENTER, UP, torch.tensor([-90.0], dtype=torch.float64),
                       torch.zeros(1, dtype=torch.float64))[0]
    assert torch.isfinite(out).all()
    assert torch.dot(camera_center(out) - CENTER, UP) == pytest.approx(0.0, abs=1e-9)  # now level with it
    assert torch.linalg.norm(camera_center(out) - CENTER) == pytest.approx(3.0)


def test_input_and_fixed_paths():
    viewmats = torch.stack([reference_camera((x, -5.0, 0.0)) for x in (0.0, 0.5, 1.0, 1.5)])
    Ks = K.expand(4, 3, 3).clone()
    path = input_path(viewmats, Ks)
    assert torch.equal(path.viewmats, viewmats)
    assert torch.allclose(path.times, torch.tensor([0.0, 1 / 3, 2 / 3, 1.0], dtype=torch.float64))
    fixed = fixed_path(viewmats, Ks, frame=2, num_frames=5)
    assert torch.equal(fixed.viewmats, viewmats[2].expand(5, 4, 4))
    assert torch.allclose(fixed.times, torch.linspace(0, 1, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"frame must be in \[0, 4\)"):
        fixed_path(viewmats, Ks, frame=4)
    with pytest.raises(ValueError, match=r"Ks: expected \(4, 3, 3\)"):
        input_path(viewmats, Ks[:3])


def test_orbit_schedule():
    viewmat = reference_camera()
    still = orbit_path(viewmat, K, CENTER, UP, 6, azimuth_sweep_deg=0.0, elevation_range_deg=(0.0, 0.0), time=0.25)
    assert torch.equal(still.viewmats, viewmat.expand(6, 4, 4))
    assert torch.equal(still.Ks, K.expand(6, 3, 3))
    assert torch.equal(still.times, torch.full((6,), 0.25, dtype=torch.float64))

    orbit = orbit_path(viewmat, K, CENTER, UP, 8, azimuth_sweep_deg=360.0, elevation_range_deg=(0.0, 20.0),
                       time=None)
    assert torch.allclose(orbit.times, torch.linspace(0, 1, 8, dtype=torch.float64))
    offsets = camera_center(orbit.viewmats) - CENTER
    assert torch.allclose(torch.linalg.norm(offsets, dim=-1), torch.full((8,), 5.0, dtype=torch.float64))
    elevations = torch.rad2deg(torch.asin(offsets @ UP / 5.0))
    expected = 20.0 * 0.5 * (1 - torch.cos(2 * math.pi * torch.arange(8, dtype=torch.float64) / 8))
    assert torch.allclose(elevations, expected)
    azimuths = torch.rad2deg(torch.atan2(offsets[:, 1], offsets[:, 0]))  # reference sits at -90
    assert torch.allclose(torch.remainder(azimuths + 90.0, 360.0)[1:], 45.0 * torch.arange(1, 8, dtype=torch.float64))
    # Every orbit camera keeps looking at the centre.
    pixels, _ = project_points(CENTER[None], orbit.viewmats, K.expand(8, 3, 3))
    assert torch.allclose(pixels[:, 0], K[:2, 2].expand(8, 2))


def test_bullet_time_is_a_symmetric_arc_at_a_frozen_time():
    viewmat = reference_camera()
    path = bullet_time_path(viewmat, K, CENTER, UP, 5, time=0.4, azimuth_sweep_deg=60.0)
    assert torch.equal(path.times, torch.full((5,), 0.4, dtype=torch.float64))
    assert torch.allclose(path.viewmats[2], viewmat, atol=1e-12)
    offsets = camera_center(path.viewmats) - CENTER
    azimuths = torch.rad2deg(torch.atan2(offsets[:, 1], offsets[:, 0])) + 90.0
    assert torch.allclose(azimuths, torch.tensor([-30.0, -15.0, 0.0, 15.0, 30.0], dtype=torch.float64))
    assert torch.allclose(offsets @ UP, torch.zeros(5, dtype=torch.float64), atol=1e-12)
    single = bullet_time_path(viewmat, K, CENTER, UP, 1, time=0.4)
    assert torch.allclose(single.viewmats[0], viewmat, atol=1e-12)


def test_evaluation_views_are_45_degrees_from_the_input():
    viewmat = reference_camera()
    views = evaluation_views(viewmat, K, CENTER, UP, time=0.5)
    assert views.viewmats.shape == (4, 4, 4) and torch.equal(views.times, torch.full((4,), 0.5, dtype=torch.float64))
    reference = camera_center(viewmat) - CENTER
    offsets = camera_center(views.viewmats) - CENTER
    cosines = offsets @ reference / 25.0
    assert torch.allclose(cosines, torch.full((4,), math.cos(math.radians(45)), dtype=torch.float64))
    heights = offsets @ UP
    expected = torch.tensor([5.0 * math.sin(math.radians(e)) for e, _ in EVALUATION_ANGLES], dtype=torch.float64)
    assert torch.allclose(heights, expected, atol=1e-12)
    assert offsets[0, 0] > 0 > offsets[1, 0]  # azimuth +45 turns counter-clockwise (towards +x from -y)


def test_scale_intrinsics_scales_projections():
    point = torch.tensor([[0.3, -0.2, 2.0]])
    viewmat = torch.eye(4)[None]
    Ks, width, height = scale_intrinsics(K.float()[None], W, H, 0.5)
    assert (width, height) == (20, 15)
    full, _ = project_points(point, viewmat, K.float()[None])
    half, _ = project_points(point, viewmat, Ks)
    assert torch.allclose(half, full * 0.5)
    with pytest.raises(ValueError, match="scale must be > 0"):
        scale_intrinsics(K, W, H, 0.0)


def keyframe(time, position, look=(0.0, 0.0, 0.0), **extra):
    return {"time": time, "position": list(position), "look_at": list(look), **extra}


def test_path_from_json_interpolates_through_keyframes(tmp_path):
    spec = {"fps": 10, "keyframes": [keyframe(0.0, (0, -5, 1)), keyframe(0.5, (3, -4, 1), fov_deg=40),
                                     keyframe(1.2, (5, 0, 2), look=(0, 0, 0.5))]}
    file = tmp_path / "path.json"
    file.write_text(json.dumps(spec))
    path, fps = path_from_json(file, W, H, UP, fov_deg=60.0)
    assert fps == 10.0
    assert path.viewmats.shape == (13, 4, 4) and path.viewmats.dtype == torch.float64
    assert torch.allclose(path.times, torch.linspace(0, 1, 13, dtype=torch.float64))
    for frame, key in ((0, 0), (5, 1), (12, 2)):
        position = torch.tensor(spec["keyframes"][key]["position"], dtype=torch.float64)
        assert torch.allclose(camera_center(path.viewmats[frame]), position, atol=1e-9)
        target = torch.tensor(spec["keyframes"][key]["look_at"], dtype=torch.float64)
        pixels, _ = project_points(target[None], path.viewmats[frame][None], path.Ks[frame][None])
        assert torch.allclose(pixels[0, 0], torch.tensor([W / 2, H / 2], dtype=torch.float64), atol=1e-9)
    # Vertical field of view: a point at half the fov above the axis lands on the top edge.
    for frame, fov in ((0, 60.0), (5, 40.0), (12, 60.0)):
        assert path.Ks[frame, 1, 1] == pytest.approx(0.5 * H / math.tan(math.radians(fov) / 2))
    assert path.Ks[2, 1, 1] == pytest.approx(0.5 * H / math.tan(math.radians(52.0) / 2))  # linear in between


def test_path_from_json_catmull_rom_keeps_constant_velocity_and_scene_time():
    keys = [keyframe(t, (2.0 * t, -5.0, 0.0), look=(2.0 * t, 0.0, 0.0), scene_time=s)
            for t, s in ((0.0, 0.5), (1.0, 0.5), (2.0, 0.5), (4.0, 0.9))]
    path, _ = path_from_json({"fps": 4, "keyframes": keys}, W, H, UP, fov_deg=50.0)
    seconds = torch.arange(17, dtype=torch.float64) / 4
    # Catmull-Rom reproduces motion that is linear in time, whatever the keyframe spacing.
    assert torch.allclose(camera_center(path.viewmats)[:, 0], 2.0 * seconds, atol=1e-9)
    expected = torch.where(seconds <= 2.0, 0.5, 0.5 + 0.4 * (seconds - 2.0) / 2.0)
    assert torch.allclose(path.times, expected)


@pytest.mark.parametrize("spec, message", [
    ({"keyframes": []}, "'fps' is missing"),
    ({"fps": 0, "keyframes": []}, "'fps' must be > 0"),
    ({"fps": 24, "keyframes": [keyframe(0, (0, -5, 0))]}, "at least 2 keyframes"),
    ({"fps": 24, "speed": 1, "keyframes": []}, "unknown keys"),
    ({"fps": 24, "keyframes": [keyframe(0, (0, -5, 0)), {"time": 1, "position": [0, 0, 1]}]}, "lacks 'look_at'"),
    ({"fps": 24, "keyframes": [keyframe(0, (0, -5)), keyframe(1, (0, -5, 0))]}, "list of 3 numbers"),
    ({"fps": 24, "keyframes": [keyframe(1, (0, -5, 0)), keyframe(1, (0, -4, 0))]}, "increase strictly"),
    ({"fps": 24, "keyframes": [keyframe(0, (0, -5, 0), fov_deg=180), keyframe(1, (0, -4, 0))]}, r"\(0, 180\)"),
    ({"fps": 24, "keyframes": [keyframe(0, (0, 0, 5)), keyframe(1, (0, -4, 0))]}, "parallel"),
    ({"fps": 24, "keyframes": [keyframe(0, (0, 0, 0)), keyframe(1, (0, -4, 0))]}, "equal to 'position'"),
    ({"fps": 24, "keyframes": [keyframe(0, (0, -5, 0), scene_time=0.1), keyframe(1, (0, -4, 0))]}, "every keyframe"),
    ({"fps": 24, "keyframes": [keyframe(0, (0, -5, 0), scene_time=2), keyframe(1, (0, -4, 0), scene_time=1)]},
     r"\[0, 1\]"),
    ({"fps": 24, "keyframes": [keyframe(0, (0, -5, 0), zoom=2), keyframe(1, (0, -4, 0))]}, "unknown keys"),
    ({"fps": True, "keyframes": []}, "finite number"),
])
def test_path_from_json_rejects_bad_specs(spec, message):
    with pytest.raises(InputError, match=message) as info:
        path_from_json(spec, W, H, UP, fov_deg=50.0)
    assert "\n" not in str(info.value)


def test_path_from_json_bad_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        path_from_json(tmp_path / "missing.json", W, H, UP, 50.0)
    bad = tmp_path / "bad.json"
    bad.write_text('{"fps": 24,')
    with pytest.raises(InputError, match="not valid JSON"):
        path_from_json(bad, W, H, UP, 50.0)
    bad.write_text("[1, 2]")
    with pytest.raises(InputError, match="JSON object"):
        path_from_json(bad, W, H, UP, 50.0)
