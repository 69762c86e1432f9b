"""Background depth from geometry: triangulate static background tracks with the cameras, then densify per frame.

Valid for cameras that translate (a COLMAP reconstruction): depth is in the cameras' units. Per frame, the
inverse depths of the triangulated points visible there are spread edge-aware over the image
(:mod:`preprocess.depth.densify`). Confidence is the product of the local support (how many points lie nearby:
``1 - exp(-n / SUPPORT_SCALE)`` with ``n`` the Gaussian-weighted count within ``SUPPORT_RADIUS`` of the image's long
side) and the local mean reprojection quality ``exp(-(e / max_reprojection_px)^2)``.
"""

from __future__ import annotations

import numpy as np

from preprocess.depth.config import DepthConfig
from preprocess.depth.densify import densify, sample_support
from preprocess.depth.triangulation import project, triangulate
from scene4d.contracts.cameras import Cameras
from scene4d.contracts.tracks import PointTracks

SUPPORT_RADIUS = 0.04
SUPPORT_SCALE = 3.0


def triangulated_background(images: np.ndarray, background: PointTracks, cameras: Cameras, config: DepthConfig
                            ) -> tuple[tuple[np.ndarray, np.ndarray] | None, str]:
    """Dense background depth of every frame from triangulated background tracks.

    Args:
        images: (T, H, W, 3) uint8 RGB frames.
        background: tracks of static background points (label 0), over the same T frames.
        cameras: intrinsics and poses of the T frames.
        config: filtering and densification settings.

    Returns:
        ``(maps, summary)``: ``maps`` is ``(depth, confidence)``, (T, H, W) float32 camera-space z in the
        cameras' units and (T, H, W) float32 in [0, 1], or None when too few points survive overall or in some
        frame; ``summary`` says what was found.
    """
    num_frames, height, width = images.shape[:3]
    result = triangulate(background.tracks.astype(np.float64), background.visibility, cameras.Ks,
                         cameras.viewmats, config.max_reprojection_px, config.min_parallax_deg)
    valid = np.flatnonzero(result.valid)
    if len(valid) < config.min_points:
        return None, (f"{len(valid)} of {background.num_tracks} background tracks triangulate with parallax >= "
                      f"{config.min_parallax_deg} deg and reprojection <= {config.max_reprojection_px} px "
                      f"(need {config.min_points})")
    _, depths = project(result.points[valid], cameras.Ks, cameras.viewmats)
    quality = np.exp(-(result.reprojection[valid] / config.max_reprojection_px) ** 2)
    radius = SUPPORT_RADIUS * max(height, width)
    depth = np.empty((num_frames, height, width), np.float32)
    confidence = np.empty((num_frames, height, width), np.float32)
    for t in range(num_frames):
        seen = background.visibility[valid, t] & (depths[:, t] > 0)
        if seen.sum() < 3:
            return None, f"frame {t} sees only {int(seen.sum())} triangulated background points"
        points = background.tracks[valid[seen], t].astype(np.float64)
        inverse = densify(images[t], points, 1.0 / depths[seen, t], quality[seen], config.densify_long_side,
                          config.smoothness, config.edge_sigma)
        depth[t] = 1.0 / np.maximum(inverse, 1e-6)
        count = sample_support(points, np.ones(len(points)), height, width, radius)
        weighted = sample_support(points, quality[seen], height, width, radius)
        mean_quality = np.where(count > 1e-6, weighted / np.maximum(count, 1e-6), 0.0)
        confidence[t] = np.clip((1.0 - np.exp(-count / SUPPORT_SCALE)) * mean_quality, 0.0, 1.0)
    summary = (f"{len(valid)} of {background.num_tracks} background tracks triangulated (median reprojection "
               f"{np.median(result.reprojection[valid]):.2f} px, median parallax "
               f"{np.median(result.parallax_deg[valid]):.1f} deg)")
    return (depth, confidence), summary
