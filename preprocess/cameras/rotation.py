"""Rotation-only camera poses from background correspondences (a camera that turns but barely translates).

For a camera rotating about its centre, frame t maps to frame t + 1 by ``H = K R K^-1`` where ``R`` turns
camera-t coordinates into camera-(t + 1) coordinates. So ``K^-1 H K`` is a rotation up to scale for the right
``K``, which measures the focal length when the rotations are large enough. The rotations themselves are
fitted to the homographies' inlier correspondences as rays (3 parameters), which is far better conditioned
than decomposing a fitted homography (8 parameters, its perspective terms poorly pinned by a narrow view).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from preprocess.cameras.intrinsics import centred_intrinsics, focal_from_fov

SHARPNESS_STEP = 1.25
"""The focal cost is compared at ``f / SHARPNESS_STEP`` and ``f * SHARPNESS_STEP`` around its minimum."""
MIN_SHARPNESS = 2.0
"""A measured focal is kept only when the cost there is this many times lower than that much off it."""


def nearest_rotation(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) closest proper rotations (Frobenius norm) to ``(..., 3, 3)`` matrices, via SVD."""
    u, _, vt = np.linalg.svd(matrix)
    sign = np.sign(np.linalg.det(u @ vt))
    u[..., :, 2] *= sign[..., None]
    return u @ vt


def _normalised(homographies: np.ndarray, K: np.ndarray) -> np.ndarray:
    conjugated = np.linalg.inv(K) @ homographies @ K
    det = np.linalg.det(conjugated)
    return conjugated / np.cbrt(det)[..., None, None]


def rotation_between(source: np.ndarray, target: np.ndarray, K: np.ndarray) -> np.ndarray:
    """The rotation ``R`` that best maps the rays of ``source`` pixels onto those of ``target`` pixels.

    Least squares over unit rays (Kabsch): the nearest rotation to ``sum(target_ray source_ray^T)``.

    Args:
        source, target: (M, 2) matching pixel coordinates in two frames, M >= 2.
        K: (3, 3) intrinsics shared by both frames.

    Returns:
        (3, 3) rotation from the source camera's axes to the target camera's.
    """
    inverse = np.linalg.inv(K)

    def rays(pixels: np.ndarray) -> np.ndarray:
        homogeneous = np.concatenate([pixels, np.ones_like(pixels[:, :1])], axis=1) @ inverse.T
        return homogeneous / np.linalg.norm(homogeneous, axis=1, keepdims=True)

    return nearest_rotation(rays(target).T @ rays(source))


def chain_rotations(steps: list[np.ndarray]) -> np.ndarray:
    """(T, 3, 3) world-to-camera rotations from T-1 frame-to-next rotations, the first camera's frame being the
    world."""
    rotations = [np.eye(3)]
    for step in steps:
        rotations.append(step @ rotations[-1])
    return np.stack(rotations)


def chained(homographies: np.ndarray) -> np.ndarray:
    """(T-1, 3, 3) homographies from frame 0 to each frame t >= 1, composed from consecutive ones."""
    out, total = [], np.eye(3)
    for step in homographies:
        total = step @ total
        out.append(total / total[2, 2])
    return np.stack(out) if out else np.zeros((0, 3, 3))


def rotation_residual(focal: float, homographies: np.ndarray, width: int, height: int) -> float:
    """How far ``K^-1 H K`` is from a rotation, over all homographies (0 for exact rotations).

    Mean squared spread of the log singular values, which is scale-free and 0 only for scaled rotations.
    """
    conjugated = _normalised(homographies, centred_intrinsics(focal, width, height))
    log_singular = np.log(np.linalg.svd(conjugated, compute_uv=False))
    return float(np.mean((log_singular - log_singular.mean(axis=-1, keepdims=True)) ** 2))


@dataclass
class FocalEstimate:
    """Result of measuring the focal length from homographies.

    Attributes:
        focal: the measured focal length in pixels (meaningful whatever ``constrained`` says).
        constrained: whether the homographies pin it down (a sharp, interior minimum).
        sharpness: residual ``SHARPNESS_STEP`` off the minimum divided by the residual at it.
    """

    focal: float
    constrained: bool
    sharpness: float


def estimate_focal(homographies: np.ndarray, width: int, height: int,
                   fov_range_deg: tuple[float, float] = (20.0, 120.0)) -> FocalEstimate:
    """The focal length that makes frame-0-to-t homographies most rotation-like.

    Args:
        homographies: (N, 3, 3) rotation-induced homographies (best: from frame 0, so rotations are large).
        width, height: image size.
        fov_range_deg: diagonal fields of view searched.

    Returns:
        :class:`FocalEstimate`.
    """
    low = np.log(focal_from_fov(fov_range_deg[1], width, height))
    high = np.log(focal_from_fov(fov_range_deg[0], width, height))
    grid = np.linspace(low, high, 41)
    costs = [rotation_residual(np.exp(g), homographies, width, height) for g in grid]
    best = int(np.argmin(costs))
    bounds = (grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)])
    refined = minimize_scalar(lambda g: rotation_residual(np.exp(g), homographies, width, height),
                              bounds=bounds, method="bounded", options={"xatol": 1e-4})
    focal = float(np.exp(refined.x))
    at_minimum = max(refined.fun, 1e-12)
    around = min(rotation_residual(focal / SHARPNESS_STEP, homographies, width, height),
                 rotation_residual(focal * SHARPNESS_STEP, homographies, width, height))
    sharpness = around / at_minimum
    interior = 0 < best < len(grid) - 1
    return FocalEstimate(focal=focal, constrained=bool(interior and sharpness >= MIN_SHARPNESS),
                         sharpness=float(sharpness))
