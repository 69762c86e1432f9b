import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from preprocess.cameras.background import background_masks, measure_background
from preprocess.cameras.intrinsics import centred_intrinsics
from preprocess.cameras.rotation import (chain_rotations, estimate_focal, nearest_rotation, rotation_between,
                                         rotation_only_viewmats)

WIDTH, HEIGHT, FOCAL = 240, 180, 200.0


def _steps(num_frames: int, seed: int = 0, pan=(0.0, 0.03, 0.0), jitter: float = 0.005) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [Rotation.from_rotvec(np.asarray(pan) + rng.normal(0, jitter, 3)).as_matrix()
            for _ in range(num_frames - 1)]


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


def _observations(steps: list[np.ndarray], K: np.ndarray, noise_px: float, seed: int = 0):
    """Consecutive-frame matches and full-length tracks of random distant points seen by rotating cameras."""
    rng = np.random.default_rng(seed)
    rotations = chain_rotations(steps)
    # Directions spread over the first view (pixels back-projected), so most stay in view as the camera turns.
    pixels = rng.uniform([0, 0], [WIDTH, HEIGHT], (300, 2))
    rays = np.concatenate([pixels, np.ones((300, 1))], axis=1) @ np.linalg.inv(K).T
    projected = np.einsum("ij,tjk,nk->nti", K, rotations, rays)
    tracks = projected[..., :2] / projected[..., 2:] + rng.normal(0, noise_px, (300, len(rotations), 2))
    matches = [(tracks[:, t], tracks[:, t + 1]) for t in range(len(steps))]
    return matches, tracks, np.ones(tracks.shape[:2], bool)


def test_rotation_only_viewmats_have_no_translation_and_carry_failed_pairs_over():
    K = centred_intrinsics(FOCAL, WIDTH, HEIGHT)
    steps = _steps(5)
    matches, _, _ = _observations(steps, K, noise_px=0.0)
    matches[2] = (np.zeros((0, 2)), np.zeros((0, 2)))
    viewmats = rotation_only_viewmats(matches, K)
    np.testing.assert_allclose(viewmats[:, :3, 3], 0.0)
    np.testing.assert_allclose(viewmats[3, :3, :3], viewmats[2, :3, :3])
    np.testing.assert_allclose(viewmats[4, :3, :3], steps[3] @ viewmats[2, :3, :3], atol=1e-9)


def test_focal_is_measured_from_tracks_across_large_rotations():
    K = centred_intrinsics(FOCAL, WIDTH, HEIGHT)
    matches, tracks, visibility = _observations(_steps(12), K, noise_px=0.1)
    estimate = estimate_focal(matches, tracks, visibility, WIDTH, HEIGHT)
    assert estimate.constrained
    assert estimate.focal == pytest.approx(FOCAL, rel=0.02)
    assert estimate.error_px < 0.2


def test_focal_is_not_claimed_from_tiny_rotations():
    K = centred_intrinsics(FOCAL, WIDTH, HEIGHT)
    matches, tracks, visibility = _observations(_steps(6, pan=(0.0, 0.0005, 0.0), jitter=0.0), K, noise_px=0.3)
    assert not estimate_focal(matches, tracks, visibility, WIDTH, HEIGHT).constrained


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
