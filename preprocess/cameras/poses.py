"""Operations on a sequence of world-to-camera poses: filling gaps and choosing the world frame."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp


def interpolate_poses(viewmats: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill unknown poses from their known neighbours.

    Between two known frames the camera-to-world rotation is interpolated spherically (slerp) and the centre
    linearly, in frame index; before the first and after the last known frame the nearest known pose is held.

    Args:
        viewmats: (T, 4, 4) world-to-camera matrices; rows where ``known`` is False are ignored.
        known: (T,) bool, at least one True.

    Returns:
        (T, 4, 4) world-to-camera matrices, equal to the input where known.
    """
    if viewmats.ndim != 3 or viewmats.shape[1:] != (4, 4) or known.shape != viewmats.shape[:1]:
        raise ValueError(f"expected viewmats (T, 4, 4) and known (T,), got {viewmats.shape} and {known.shape}")
    if not known.any():
        raise ValueError("interpolate_poses needs at least one known pose")
    frames = np.flatnonzero(known)
    camtoworlds = np.linalg.inv(viewmats[frames])
    times = np.clip(np.arange(len(known)), frames[0], frames[-1]).astype(np.float64)
    out = np.tile(np.eye(4), (len(known), 1, 1))
    if len(frames) == 1:
        rotations = np.repeat(camtoworlds[:1, :3, :3], len(known), axis=0)
        centres = np.repeat(camtoworlds[:1, :3, 3], len(known), axis=0)
    else:
        rotations = Slerp(frames, Rotation.from_matrix(camtoworlds[:, :3, :3]))(times).as_matrix()
        centres = np.stack([np.interp(times, frames, camtoworlds[:, :3, 3][:, k]) for k in range(3)], axis=-1)
    out[:, :3, :3] = rotations.transpose(0, 2, 1)
    out[:, :3, 3] = -np.einsum("tij,tj->ti", out[:, :3, :3], centres)
    out[known] = viewmats[known]
    return out


def anchor_world(viewmats: np.ndarray, points: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Re-express poses and points in the first camera's frame, with lengths divided by ``scale``.

    Args:
        viewmats: (T, 4, 4) world-to-camera matrices.
        points: (P, 3) world points.
        scale: the length that becomes 1 (e.g. the points' median depth).

    Returns:
        ``(viewmats, points)`` with ``viewmats[0] = I``.
    """
    if scale <= 0 or not np.isfinite(scale):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    first_from_world = viewmats[0]
    world_from_first = np.linalg.inv(first_from_world)
    anchored = viewmats @ world_from_first
    anchored[:, :3, 3] /= scale
    moved = (points @ first_from_world[:3, :3].T + first_from_world[:3, 3]) / scale
    anchored[0] = np.eye(4)
    return anchored, moved
