import numpy as np
import pytest

from preprocess.cameras.checks import SfmModel, camera_steps, check_model, failed, find_jumps, median_depth
from preprocess.cameras.config import ChecksConfig
from preprocess.cameras.intrinsics import centred_intrinsics, focal_from_fov


def _orbit(num_frames: int, radius: float = 4.0, arc_deg: float = 60.0) -> np.ndarray:
    """World-to-camera matrices on a horizontal arc around the origin, each looking at it."""
    viewmats = []
    for angle in np.radians(np.linspace(-arc_deg / 2, arc_deg / 2, num_frames)):
        centre = np.array([radius * np.sin(angle), 0.0, -radius * np.cos(angle)])
        forward = -centre / np.linalg.norm(centre)
        right = np.cross([0.0, 1.0, 0.0], forward)
        rotation = np.stack([right, np.cross(forward, right), forward])
        viewmat = np.eye(4)
        viewmat[:3, :3], viewmat[:3, 3] = rotation, -rotation @ centre
        viewmats.append(viewmat)
    return np.stack(viewmats)


def _good_model(num_frames: int = 30) -> SfmModel:
    rng = np.random.default_rng(0)
    return SfmModel(K=centred_intrinsics(focal_from_fov(60.0, 480, 270), 480, 270), viewmats=_orbit(num_frames),
                    registered=np.ones(num_frames, bool), points=rng.uniform(-1, 1, (500, 3)),
                    reprojection_px=0.4, num_models=1, width=480, height=270)


def test_a_clean_orbit_passes_every_check():
    checks = check_model(_good_model(), ChecksConfig())
    assert failed(checks) == []
    assert checks["registered"]["value"] == 1.0
    assert checks["focal"]["value"] == pytest.approx(60.0, abs=0.01)


def test_too_few_registered_frames_fail():
    model = _good_model()
    model.registered[:4] = False  # 26/30 < 90 %
    assert failed(check_model(model, ChecksConfig())) == ["registered"]
    model.registered[:4] = True
    model.registered[:3] = False  # 27/30 = 90 %
    assert failed(check_model(model, ChecksConfig())) == []


def test_too_few_points_fail():
    model = _good_model()
    model.points = model.points[:99]
    checks = check_model(model, ChecksConfig())
    assert failed(checks) == ["points"]
    model.points = np.zeros((0, 3))
    model.reprojection_px = float("inf")  # what COLMAP's empty model amounts to
    checks = check_model(model, ChecksConfig())
    assert set(failed(checks)) == {"points", "reprojection"}
    assert checks["reprojection"]["value"] is None  # no infinity in a JSON report


def test_huge_reprojection_fails():
    model = _good_model()
    model.reprojection_px = 3.2
    assert failed(check_model(model, ChecksConfig())) == ["reprojection"]


@pytest.mark.parametrize("fov", [4.0, 150.0])
def test_absurd_focal_fails(fov):
    model = _good_model()
    model.K = centred_intrinsics(focal_from_fov(fov, 480, 270), 480, 270)
    checks = check_model(model, ChecksConfig())
    assert failed(checks) == ["focal"]
    assert checks["focal"]["value"] == pytest.approx(fov, abs=0.01)


def test_a_pose_jump_fails_and_names_the_frame():
    model = _good_model()
    model.viewmats[17:, :3, 3] += model.viewmats[17:, :3, :3] @ np.array([1.5, 0.0, 0.0])  # centres move 1.5
    checks = check_model(model, ChecksConfig())
    assert failed(checks) == ["smooth"]
    assert "[17]" in checks["smooth"]["detail"]


def test_a_rotation_jump_fails():
    model = _good_model()
    turn = np.eye(4)
    turn[:3, :3] = [[np.cos(0.3), 0, np.sin(0.3)], [0, 1, 0], [-np.sin(0.3), 0, np.cos(0.3)]]
    model.viewmats[10:] = turn @ model.viewmats[10:]  # 17 degrees at once, about the camera centre
    checks = check_model(model, ChecksConfig())
    assert failed(checks) == ["smooth"]
    assert "[10]" in checks["smooth"]["detail"]


def test_unregistered_frames_are_skipped_by_the_jump_test():
    model = _good_model()
    model.viewmats[12] = np.eye(4)  # garbage where not registered
    model.registered[12] = False
    assert failed(check_model(model, ChecksConfig())) == []


def test_find_jumps_against_hand_computed_cases():
    steps = np.array([1.0, 1.1, 0.9, 1.0, 6.0, 1.0, 1.05, 0.95])
    assert find_jumps(steps, ratio=5.0, window=3, floor=0.0).tolist() == [4]
    assert find_jumps(steps, ratio=7.0, window=3, floor=0.0).tolist() == []
    # A still camera's noise: large ratios but below the floor.
    noise = np.array([1e-4, 1e-5, 2e-3, 1e-5, 1e-4])
    assert find_jumps(noise, ratio=5.0, window=2, floor=0.01).tolist() == []


def test_camera_steps_measure_centre_distance_and_angle():
    viewmats = _orbit(3, radius=2.0, arc_deg=20.0)
    translation, rotation = camera_steps(viewmats)
    assert rotation == pytest.approx([10.0, 10.0])
    assert translation == pytest.approx([2 * 2.0 * np.sin(np.radians(5.0))] * 2)


def test_median_depth_of_points_at_the_orbit_centre_is_the_radius():
    model = _good_model()
    model.points = np.zeros((10, 3))
    assert median_depth(model) == pytest.approx(4.0)
