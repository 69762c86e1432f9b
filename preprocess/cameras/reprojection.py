"""Reprojection error of 2D point tracks under given cameras (each track triangulated, then reprojected).

Triangulation is linear (DLT) in homogeneous coordinates, so points at infinity are allowed: with a camera that
only rotates, or a fixed one, a track is explained by a direction and its error measures how well the rotations
alone account for it.
"""

from __future__ import annotations

import numpy as np

MIN_VIEWS = 2


def triangulate_tracks(tracks: np.ndarray, visibility: np.ndarray, Ks: np.ndarray, viewmats: np.ndarray
                       ) -> np.ndarray:
    """Homogeneous world points that best explain each track (algebraic least squares).

    Args:
        tracks: (N, T, 2) continuous pixel coordinates.
        visibility: (N, T) bool.
        Ks: (T, 3, 3) intrinsics.
        viewmats: (T, 4, 4) world-to-camera matrices.

    Returns:
        (N, 4) unit-norm homogeneous points (rows of tracks seen fewer than twice are arbitrary).
    """
    tracks = np.where(visibility[..., None], tracks, 0.0)
    # Normalised image coordinates keep the linear system well conditioned.
    homogeneous = np.concatenate([tracks, np.ones_like(tracks[..., :1])], axis=-1)
    rays = np.einsum("tij,ntj->nti", np.linalg.inv(Ks), homogeneous)
    # Cameras that share one centre (fixed or rotating) see every point of a ray alike, the centre included;
    # expressed about that centre, the best point is a direction at infinity.
    centres = -np.einsum("tji,tj->ti", viewmats[:, :3, :3], viewmats[:, :3, 3])
    shared_centre = np.ptp(centres, axis=0).max() <= 1e-12 * (1.0 + np.abs(centres).max())
    projections = viewmats[:, :3, :3] if shared_centre else viewmats[:, :3, :]
    rows_x = rays[..., 0:1] * projections[None, :, 2] - projections[None, :, 0]
    rows_y = rays[..., 1:2] * projections[None, :, 2] - projections[None, :, 1]
    system = np.concatenate([rows_x, rows_y], axis=1) * np.tile(visibility, (1, 2))[..., None]
    _, _, vt = np.linalg.svd(system, full_matrices=False)
    if shared_centre:
        return np.concatenate([vt[:, -1], np.zeros((len(vt), 1))], axis=1)
    return vt[:, -1]


def reproject(points: np.ndarray, Ks: np.ndarray, viewmats: np.ndarray) -> np.ndarray:
    """(N, T, 2) pixel positions of homogeneous world points ``(N, 4)`` in every camera."""
    cam = np.einsum("tij,nj->nti", viewmats[:, :3, :], points)
    pixels = np.einsum("tij,ntj->nti", Ks, cam)
    with np.errstate(divide="ignore", invalid="ignore"):
        return pixels[..., :2] / pixels[..., 2:3]


def track_reprojection_errors(tracks: np.ndarray, visibility: np.ndarray, Ks: np.ndarray,
                              viewmats: np.ndarray) -> np.ndarray:
    """Distance between every visible observation and its triangulated point's reprojection.

    Args:
        tracks: (N, T, 2) pixel coordinates; visibility: (N, T) bool; Ks: (T, 3, 3); viewmats: (T, 4, 4).

    Returns:
        (N, T) errors in pixels, nan where not visible or the track has fewer than 2 views.
    """
    if tracks.ndim != 3 or tracks.shape[2] != 2 or visibility.shape != tracks.shape[:2]:
        raise ValueError(f"tracks (N, T, 2) and visibility (N, T) expected, got {tracks.shape} and "
                         f"{visibility.shape}")
    if Ks.shape != (tracks.shape[1], 3, 3) or viewmats.shape != (tracks.shape[1], 4, 4):
        raise ValueError(f"Ks ({tracks.shape[1]}, 3, 3) and viewmats ({tracks.shape[1]}, 4, 4) expected, got "
                         f"{Ks.shape} and {viewmats.shape}")
    errors = np.full(visibility.shape, np.nan)
    usable = visibility.sum(axis=1) >= MIN_VIEWS
    if not usable.any():
        return errors
    points = triangulate_tracks(tracks[usable], visibility[usable], Ks, viewmats)
    with np.errstate(invalid="ignore"):
        distance = np.linalg.norm(reproject(points, Ks, viewmats) - tracks[usable], axis=-1)
    errors[usable] = np.where(visibility[usable], distance, np.nan)
    return errors


def summarise_errors(errors: np.ndarray) -> dict:
    """Median, mean and 90th percentile of the finite errors, and how many tracks they come from."""
    finite = errors[np.isfinite(errors)]
    if len(finite) == 0:
        return {"median_px": None, "mean_px": None, "p90_px": None, "num_tracks": 0}
    return {"median_px": round(float(np.median(finite)), 4), "mean_px": round(float(finite.mean()), 4),
            "p90_px": round(float(np.percentile(finite, 90)), 4),
            "num_tracks": int(np.isfinite(errors).any(axis=1).sum())}
