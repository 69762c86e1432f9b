"""Rotation-only camera poses from background correspondences (a camera that turns but barely translates).

Between consecutive frames the rotation is fitted to the background homography's inlier correspondences as
rays (3 parameters; far better conditioned than decomposing the fitted 8-parameter homography, whose
perspective terms a narrow view pins poorly). The focal length is measured, when the rotations are large
enough to reveal it, as the one whose rotation-only cameras best explain the long background tracks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from preprocess.cameras.intrinsics import centred_intrinsics, focal_from_fov
from preprocess.cameras.reprojection import track_reprojection_errors

SHARPNESS_STEP = 1.25
"""The focal cost is compared at ``f / SHARPNESS_STEP`` and ``f * SHARPNESS_STEP`` around its minimum."""
MIN_SHARPNESS = 2.0
"""A measured focal is kept only when the cost there is this many times lower than that much off it."""
CLIP_PX = 5.0
"""Track errors are clipped here in the focal cost, so tracks on unmasked moving objects weigh little."""
MAX_TRACKS = 600
"""The focal cost uses at most this many tracks (the longest), for speed."""


def nearest_rotation(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) closest proper rotations (Frobenius norm) to ``(..., 3, 3)`` matrices, via SVD."""
    u, _, vt = np.linalg.svd(matrix)
    sign = np.sign(np.linalg.det(u @ vt))
    u[..., :, 2] *= sign[..., None]
    return u @ vt


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


def rotation_only_viewmats(matches: list[tuple[np.ndarray, np.ndarray]], K: np.ndarray) -> np.ndarray:
    """(T, 4, 4) world-to-camera matrices with zero translation, from T-1 consecutive-frame correspondences.

    A pair without correspondences keeps the previous frame's rotation.
    """
    steps = [rotation_between(source, target, K) if len(source) >= 2 else np.eye(3) for source, target in matches]
    viewmats = np.tile(np.eye(4), (len(matches) + 1, 1, 1))
    viewmats[:, :3, :3] = chain_rotations(steps)
    return viewmats


def rotation_only_error(focal: float, matches: list[tuple[np.ndarray, np.ndarray]], tracks: np.ndarray,
                        visibility: np.ndarray, width: int, height: int) -> float:
    """Mean (clipped at ``CLIP_PX``) reprojection error of tracks under rotation-only cameras with this focal."""
    K = centred_intrinsics(focal, width, height)
    viewmats = rotation_only_viewmats(matches, K)
    errors = track_reprojection_errors(tracks, visibility, np.repeat(K[None], len(viewmats), axis=0), viewmats)
    finite = errors[np.isfinite(errors)]
    return float(np.mean(np.minimum(finite, CLIP_PX))) if len(finite) else float("inf")


@dataclass
class FocalEstimate:
    """Result of measuring the focal length of a rotating camera.

    Attributes:
        focal: the best focal length in pixels (meaningful whatever ``constrained`` says).
        constrained: whether the data pin it down (a sharp minimum inside the searched range).
        sharpness: cost ``SHARPNESS_STEP`` off the minimum divided by the cost at it.
        error_px: the cost at the minimum (mean clipped track error, pixels).
    """

    focal: float
    constrained: bool
    sharpness: float
    error_px: float


def estimate_focal(matches: list[tuple[np.ndarray, np.ndarray]], tracks: np.ndarray, visibility: np.ndarray,
                   width: int, height: int, fov_range_deg: tuple[float, float] = (20.0, 120.0)) -> FocalEstimate:
    """The focal length whose rotation-only cameras best explain the background tracks.

    Args:
        matches: T-1 consecutive-frame correspondences ``(source (M, 2), target (M, 2))``.
        tracks: (N, T, 2) background tracks; visibility: (N, T) bool. Long tracks across large rotations are
            what reveal the focal length.
        width, height: image size (principal point at its centre).
        fov_range_deg: diagonal fields of view searched.

    Returns:
        :class:`FocalEstimate`.
    """
    longest = np.argsort(-visibility.sum(axis=1), kind="stable")[:MAX_TRACKS]
    tracks, visibility = tracks[longest], visibility[longest]

    def cost(log_focal: float) -> float:
        return rotation_only_error(float(np.exp(log_focal)), matches, tracks, visibility, width, height)

    low = np.log(focal_from_fov(fov_range_deg[1], width, height))
    high = np.log(focal_from_fov(fov_range_deg[0], width, height))
    grid = np.linspace(low, high, 25)
    costs = [cost(g) for g in grid]
    best = int(np.argmin(costs))
    bounds = (grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)])
    refined = minimize_scalar(cost, bounds=bounds, method="bounded", options={"xatol": 1e-3})
    focal = float(np.exp(refined.x))
    at_minimum = max(float(refined.fun), 1e-9)
    around = min(cost(refined.x - np.log(SHARPNESS_STEP)), cost(refined.x + np.log(SHARPNESS_STEP)))
    sharpness = around / at_minimum
    interior = 0 < best < len(grid) - 1
    return FocalEstimate(focal=focal, constrained=bool(interior and sharpness >= MIN_SHARPNESS),
                         sharpness=float(sharpness), error_px=at_minimum)
