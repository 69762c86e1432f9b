"""Linear (DLT) triangulation of 2D tracks seen by known cameras, with the measures used to filter them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Triangulation:
    """World points of N tracks and how trustworthy each is.

    Attributes:
        points: (N, 3) world coordinates (meaningless where ``valid`` is False).
        valid: (N,) bool: in front of every camera that sees it, reprojection and parallax within limits.
        reprojection: (N,) mean reprojection error in pixels over the frames where the track is visible.
        parallax_deg: (N,) largest angle between the ray of the first visible frame and any other visible ray.
    """

    points: np.ndarray
    valid: np.ndarray
    reprojection: np.ndarray
    parallax_deg: np.ndarray


def project(points: np.ndarray, Ks: np.ndarray, viewmats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of world points into every camera (``scene4d.conventions`` axes and pixels).

    Args:
        points: (N, 3) world points.
        Ks: (T, 3, 3) intrinsics.
        viewmats: (T, 4, 4) world-to-camera matrices.

    Returns:
        ``(pixels, depths)``: (N, T, 2) pixel coordinates and (N, T) camera-space z.
    """
    cam = np.einsum("tij,nj->nti", viewmats[:, :3, :3], points) + viewmats[None, :, :3, 3]
    depths = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = cam[..., :2] / depths[..., None]
    pixels = np.einsum("tij,ntj->nti", Ks[:, :2, :2], uv) + Ks[None, :, :2, 2]
    return pixels, depths


def triangulate(tracks: np.ndarray, visibility: np.ndarray, Ks: np.ndarray, viewmats: np.ndarray,
                max_reprojection_px: float, min_parallax_deg: float) -> Triangulation:
    """Triangulate every track from all frames where it is visible (DLT on normalised image coordinates).

    Args:
        tracks: (N, T, 2) pixel positions (centres at +0.5).
        visibility: (N, T) bool.
        Ks: (T, 3, 3) intrinsics.
        viewmats: (T, 4, 4) world-to-camera matrices.
        max_reprojection_px: largest mean reprojection error of a valid point.
        min_parallax_deg: smallest parallax of a valid point.

    Returns:
        :class:`Triangulation`; tracks visible in fewer than 2 frames are invalid.
    """
    num_tracks, num_frames = visibility.shape
    if tracks.shape != (num_tracks, num_frames, 2) or Ks.shape != (num_frames, 3, 3) or \
            viewmats.shape != (num_frames, 4, 4):
        raise ValueError(f"triangulate: tracks {tracks.shape}, visibility {visibility.shape}, Ks {Ks.shape} and "
                         f"viewmats {viewmats.shape} do not describe the same N tracks over T frames")
    homogeneous = np.concatenate([tracks, np.ones((num_tracks, num_frames, 1))], axis=-1)
    rays = np.einsum("tij,ntj->nti", np.linalg.inv(Ks), homogeneous)  # normalised coordinates, z = 1
    projections = viewmats[:, :3, :]  # (T, 3, 4)
    rows_x = rays[..., 0:1] * projections[None, :, 2] - projections[None, :, 0]
    rows_y = rays[..., 1:2] * projections[None, :, 2] - projections[None, :, 1]
    design = np.concatenate([rows_x, rows_y], axis=1) * np.tile(visibility, 2)[..., None]
    _, _, vh = np.linalg.svd(design)
    solution = vh[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        points = solution[:, :3] / solution[:, 3:4]
    points = np.where(np.isfinite(points), points, 0.0)

    pixels, depths = project(points, Ks, viewmats)
    counts = visibility.sum(axis=1)
    error = np.linalg.norm(np.nan_to_num(pixels - tracks, nan=1e6), axis=-1)
    reprojection = np.where(counts > 0, (error * visibility).sum(axis=1) / np.maximum(counts, 1), np.inf)
    in_front = np.all((depths > 0) | ~visibility, axis=1)
    parallax = _parallax_deg(rays, visibility, viewmats)
    valid = (counts >= 2) & in_front & (reprojection <= max_reprojection_px) & (parallax >= min_parallax_deg)
    return Triangulation(points, valid, reprojection, parallax)


def _parallax_deg(rays: np.ndarray, visibility: np.ndarray, viewmats: np.ndarray) -> np.ndarray:
    """(N,) largest angle between the world ray of a track's first visible frame and its other visible rays."""
    world = np.einsum("tji,ntj->nti", viewmats[:, :3, :3], rays)  # R^T ray
    world /= np.linalg.norm(world, axis=-1, keepdims=True)
    first = world[np.arange(len(world)), np.argmax(visibility, axis=1)]
    cosine = np.clip(np.einsum("nti,ni->nt", world, first), -1.0, 1.0)
    angle = np.degrees(np.arccos(cosine))
    return np.where(visibility, angle, 0.0).max(axis=1)
