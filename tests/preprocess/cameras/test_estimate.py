import json

import numpy as np
import pytest

from preprocess.cameras.config import CamerasConfig, check_config
from preprocess.cameras.estimate import estimate_camera_motion, estimate_cameras
from preprocess.cameras.intrinsics import centred_intrinsics, focal_from_fov
from scene4d.contracts.masks import ObjectMasks
from scene4d.errors import InputError

WIDTH, HEIGHT = 240, 180


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = (np.trace(np.swapaxes(a, -1, -2) @ b, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def _static_clip(scenes, num_frames: int = 6):
    """A still camera: the same textured view with sensor noise, and a square moving across it."""
    base = scenes.texture((HEIGHT, WIDTH), seed=1)
    rng = np.random.default_rng(0)
    images, objects = [], np.zeros((num_frames, HEIGHT, WIDTH), bool)
    for t in range(num_frames):
        image = base.astype(float) + rng.normal(0, 2.0, base.shape)
        image[60:110, 30 + 10 * t:80 + 10 * t] = 40
        objects[t, 60:110, 30 + 10 * t:80 + 10 * t] = True
        images.append(np.clip(image, 0, 255).astype(np.uint8))
    return scenes.frames_of(images), ObjectMasks(objects[None], [1])


def test_synthetic_orbit_is_reconstructed_by_colmap_with_its_known_poses(scenes):
    focal = 210.0
    K = centred_intrinsics(focal, WIDTH, HEIGHT)
    truth = np.stack([scenes.look_at(np.array([x, -0.3, 0.25 * x * x]), np.array([0.0, 0.8, 6.0]))
                      for x in np.linspace(-1.5, 1.5, 8)])
    frames = scenes.frames_of([scenes.render(scenes.box_scene(), K, v, WIDTH, HEIGHT) for v in truth])
    config = CamerasConfig(mappers=["global"], first_octave=0)
    cameras, backend, reason, report = estimate_cameras(frames, None, config)
    assert backend == "colmap-global", reason
    assert report["attempts"][0]["failed"] == []
    relative = truth @ np.linalg.inv(truth[0])  # the estimate's world is the first camera's
    assert _angle_deg(cameras.viewmats[:, :3, :3], relative[:, :3, :3]).max() < 0.5
    true_centres = np.linalg.inv(relative)[:, :3, 3]
    scale = (true_centres * cameras.centers).sum() / (cameras.centers**2).sum()
    error = np.linalg.norm(scale * cameras.centers - true_centres, axis=1).max()
    assert error < 0.02 * np.linalg.norm(true_centres, axis=1).max()
    assert cameras.Ks[0, 0, 0] == pytest.approx(focal, rel=0.03)
    assert cameras.Ks[0, :2, 2] == pytest.approx([WIDTH / 2, HEIGHT / 2])
    assert report["background_reprojection"]["median_px"] < 0.5
    json.dumps(report, allow_nan=False)


@pytest.mark.parametrize("masked", [True, False])
def test_a_still_camera_gives_fixed_identity_poses_without_trying_sfm(scenes, masked):
    frames, masks = _static_clip(scenes)
    estimate = estimate_camera_motion(frames, masks if masked else None, CamerasConfig())
    assert estimate.backend == "fixed" and estimate.report["attempts"] == []
    np.testing.assert_allclose(estimate.cameras.viewmats, np.tile(np.eye(4), (6, 1, 1)))
    prior = focal_from_fov(60.0, WIDTH, HEIGHT)
    np.testing.assert_allclose(estimate.cameras.Ks, np.tile(centred_intrinsics(prior, WIDTH, HEIGHT), (6, 1, 1)))
    assert estimate.cameras.method == "fixed" and "moves at most" in estimate.reason
    assert estimate.report["background_reprojection"]["median_px"] < 0.2


def test_known_intrinsics_are_scaled_from_the_source_size(scenes):
    frames, masks = _static_clip(scenes)
    frames.source_size = (2 * WIDTH, 2 * HEIGHT)
    config = CamerasConfig(intrinsics=[400.0, 410.0, 241.0, 179.0])
    cameras, _, _, report = estimate_cameras(frames, masks, config)
    np.testing.assert_allclose(cameras.Ks[0], [[200.0, 0, 120.5], [0, 205.0, 89.5], [0, 0, 1]])
    assert report["intrinsics"]["source"] == "known"


def _panning_clip(scenes, degrees_per_frame: float, focal: float):
    """A camera turning about its vertical axis in front of a textured plane (frames differ by K R K^-1)."""
    K = centred_intrinsics(focal, WIDTH, HEIGHT)
    scene = [scenes.quad([0, 0, 1], [1.6, 0, 0], [0, 1.2, 0], scenes.texture((720, 960), seed=5, num_shapes=1500))]
    views = []
    for angle in np.radians(degrees_per_frame) * np.arange(10):
        viewmat = np.eye(4)
        viewmat[:3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
        views.append(viewmat)
    return scenes.frames_of([scenes.render(scene, K, v, WIDTH, HEIGHT) for v in views]), np.stack(views)


def test_a_slow_pan_is_not_fixed_and_rotation_only_poses_follow_it(scenes):
    # 0.1 degree per frame: under 0.5 px per frame but ~3 px over the clip (like sam2_bedroom's drift).
    frames, views = _panning_clip(scenes, 0.1, focal=200.0)
    fov = float(np.degrees(2 * np.arctan(np.hypot(WIDTH, HEIGHT) / 2 / 200.0)))
    estimate = estimate_camera_motion(frames, None, CamerasConfig(mappers=[], fov_deg=fov))
    assert estimate.backend == "homography-rotation"
    assert estimate.report["background"]["largest_shift_px"] > 2.0
    assert estimate.report["background"]["median_step_px"] < 0.5
    assert _angle_deg(estimate.cameras.viewmats[:, :3, :3], views[:, :3, :3]).max() < 0.05
    np.testing.assert_allclose(estimate.cameras.viewmats[:, :3, 3], 0.0)
    assert estimate.report["background_reprojection"]["median_px"] < 0.2
    assert "no COLMAP model passed (none tried)" in estimate.reason


def test_a_wide_pan_measures_the_focal_length_from_background_tracks(scenes):
    frames, views = _panning_clip(scenes, 2.0, focal=200.0)
    estimate = estimate_camera_motion(frames, None, CamerasConfig(backend="rotation"))
    assert estimate.report["intrinsics"]["source"].startswith("measured from background tracks")
    # Flow errors of ~0.1 px against a focal signal of a few tenths of a pixel: a few percent, not exact.
    assert estimate.cameras.Ks[0, 0, 0] == pytest.approx(200.0, rel=0.05)
    assert _angle_deg(estimate.cameras.viewmats[:, :3, :3], views[:, :3, :3]).max() < 0.05 * 18.0


def test_forced_colmap_that_fails_its_checks_is_a_clear_error(scenes):
    frames, masks = _static_clip(scenes, num_frames=4)
    with pytest.raises(InputError, match="no COLMAP reconstruction passed the checks"):
        estimate_camera_motion(frames, masks, CamerasConfig(backend="colmap", mappers=["global"], first_octave=0))


def test_bad_inputs_are_clear_errors(scenes):
    frames, masks = _static_clip(scenes)
    with pytest.raises(InputError, match="masks: .*video is 240x180"):
        estimate_camera_motion(frames, ObjectMasks(masks.masks[:, :, :, :100], [1]), CamerasConfig())
    with pytest.raises(InputError, match="masks: 3 frames, video has 6"):
        estimate_camera_motion(frames, ObjectMasks(masks.masks[:, :3], [1]), CamerasConfig())
    frames.images[:] = 77
    with pytest.raises(InputError, match="single colour"):
        estimate_camera_motion(frames, None, CamerasConfig())


@pytest.mark.parametrize("change, message", [
    ({"backend": "sfm"}, "cameras.backend"),
    ({"intrinsics": [1.0, 2.0]}, "cameras.intrinsics"),
    ({"intrinsics": [0.0, 2.0, 1.0, 1.0]}, "focal lengths must be positive"),
    ({"fov_deg": 200.0}, "cameras.fov_deg"),
    ({"mappers": ["hierarchical"]}, "unknown 'hierarchical'"),
    ({"flow_preset": "slow"}, "cameras.flow_preset"),
    ({"static_threshold_px": 0.0}, "static_threshold_px must be positive"),
    ({"min_focal_sensitivity": 0.5}, "min_focal_sensitivity"),
])
def test_bad_settings_are_named(change, message):
    with pytest.raises(InputError, match=message):
        check_config(CamerasConfig(**change))
