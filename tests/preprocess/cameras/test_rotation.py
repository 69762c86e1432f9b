import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from preprocess.cameras.background import background_masks, measure_background
from preprocess.cameras.intrinsics import centred_intrinsics
from preprocess.cameras.rotation import (chain_rotations, chained, estimate_focal, nearest_rotation,
                                         rotation_between, rotation_residual)

WIDTH, HEIGHT, FOCAL = 240, 180, 200.0


def _steps(num_frames: int, seed: int = 0, pan=(0.0, 0.03, 0.0)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [Rotation.from_rotvec(np.asarray(pan) + rng.normal(0, 0.005, 3)).as_matrix() for _ in range(num_frames - 1)]


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = (np.trace(np.swapaxes(a, -1, -2) @ b, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def test_exact_correspondences_give_back_the_rotations():
    K = centred_intrinsics(FOCAL, WIDTH, HEIGHT)
    steps = _steps(12)
    rng = np.random.default_rng(3)
    for step in steps:
        source = rng.uniform([0, 0], [WIDTH, HEIGHT], (40, 2))
        moved = np.concatenate([source, np.ones((40, 1))], axis=1) @ (K @ step @ np.linalg.inv(K)).T
        np.testing.assert_allclose(rotation_between(source, moved[:, :2] / moved[:, 2:], K), step, atol=1e-12)


def test_chaining_composes_steps_from_the_first_frame():
    steps = _steps(4)
    rotations = chain_rotations(steps)
    np.testing.assert_allclose(rotations[0], np.eye(3))
    np.testing.assert_allclose(rotations[3], steps[2] @ steps[1] @ steps[0], atol=1e-15)


def test_nearest_rotation_is_orthonormal_with_positive_determinant():
    noisy = Rotation.from_rotvec([0.1, -0.2, 0.3]).as_matrix() + np.random.default_rng(0).normal(0, 0.01, (3, 3))
    rotation = nearest_rotation(noisy)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    assert _angle_deg(rotation, noisy / np.cbrt(np.linalg.det(noisy))) < 1.0


def test_focal_is_measured_from_large_enough_rotations():
    K = centred_intrinsics(FOCAL, WIDTH, HEIGHT)
    homographies = np.stack([K @ R @ np.linalg.inv(K) for R in _steps(20)])
    noisy = homographies * (1 + np.random.default_rng(1).normal(0, 1e-5, homographies.shape))
    estimate = estimate_focal(chained(noisy), WIDTH, HEIGHT)
    assert estimate.constrained
    assert estimate.focal == pytest.approx(FOCAL, rel=0.01)
    assert rotation_residual(FOCAL, chained(homographies), WIDTH, HEIGHT) < 1e-20


def test_focal_is_not_claimed_from_pure_image_translations():
    shifts = np.tile(np.eye(3), (10, 1, 1))
    shifts[:, 0, 2] = np.linspace(0.5, 5.0, 10)  # a pan so small it is a shift: any focal explains it
    shifts *= 1 + np.random.default_rng(2).normal(0, 1e-6, shifts.shape)
    assert not estimate_focal(chained(shifts), WIDTH, HEIGHT).constrained


def test_rotations_are_recovered_from_rendered_frames_within_a_tenth_of_a_degree(scenes):
    K = centred_intrinsics(FOCAL, WIDTH, HEIGHT)
    # A big textured plane one unit ahead: with the camera only turning, frames differ by K R K^-1 exactly.
    scene = [scenes.quad([0, 0, 1], [1.6, 0, 0], [0, 1.2, 0], scenes.texture((720, 960), seed=5, num_shapes=1500))]
    steps = _steps(8, pan=(0.0, 0.02, 0.0))
    truth = chain_rotations(steps)
    images = []
    for rotation in truth:
        viewmat = np.eye(4)
        viewmat[:3, :3] = rotation
        images.append(scenes.render(scene, K, viewmat, WIDTH, HEIGHT))
    frames = scenes.frames_of(images)
    motion = measure_background(frames.images, background_masks(8, HEIGHT, WIDTH, None, 0))
    assert (motion.inliers > 0).all()
    recovered = chain_rotations([rotation_between(source, target, K) for source, target in motion.matches])
    assert _angle_deg(recovered, truth).max() < 0.1
