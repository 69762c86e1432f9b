"""Exact ray casting of analytic surfaces: nearest hit, texture lookup, Lambert shading (independent of the
project's Gaussian rasterizer).

Surfaces are the scene's objects followed by its planes; a ray's label is the index of the surface it hits first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.synthetic.shapes import AnalyticObject, TexturedPlane
from benchmarks.synthetic.textures import sample_texture

AMBIENT = 0.35


@dataclass
class Hits:
    """Nearest hit of each ray.

    Attributes:
        depth: (R,) ray parameter of the hit; z-depth when the directions have camera-space z = 1.
        label: (R,) index into the surface list of the surface hit, -1 for a miss.
    """

    depth: np.ndarray
    label: np.ndarray


def camera_rays(K: np.ndarray, viewmat: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rays through continuous pixel positions, scaled so the ray parameter is camera-space z.

    Args:
        K: (3, 3) intrinsics.
        viewmat: (4, 4) world-to-camera matrix (OpenCV axes).
        pixels: (R, 2) ``(x, y)`` positions, pixel centres at +0.5.

    Returns:
        ``(origin, directions)``: (3,) camera centre and (R, 3) world directions.
    """
    rotation, translation = viewmat[:3, :3], viewmat[:3, 3]
    camera_dirs = np.stack([(pixels[:, 0] - K[0, 2]) / K[0, 0], (pixels[:, 1] - K[1, 2]) / K[1, 1],
                            np.ones(len(pixels))], axis=1)
    return -rotation.T @ translation, camera_dirs @ rotation


def cast(surfaces: list[AnalyticObject | TexturedPlane], origin: np.ndarray, directions: np.ndarray,
         frame: int) -> Hits:
    """Nearest intersection of each ray with any surface at ``frame``.

    Args:
        surfaces: objects and planes.
        origin: (3,) ray origin.
        directions: (R, 3) ray directions.
    """
    t = np.stack([surface.intersect(origin, directions, frame) for surface in surfaces])
    label = t.argmin(axis=0)
    depth = t[label, np.arange(t.shape[1])]
    return Hits(depth=depth, label=np.where(np.isfinite(depth), label, -1))


def shade(surfaces: list[AnalyticObject | TexturedPlane], origin: np.ndarray, directions: np.ndarray, hits: Hits,
          frame: int, light: np.ndarray) -> np.ndarray:
    """Lambert-shaded texture colour of each hit, black for a miss.

    Args:
        light: (3,) unit direction towards the (directional) light.

    Returns:
        (R, 3) float32 in [0, 1].
    """
    colours = np.zeros((len(directions), 3), dtype=np.float32)
    for index, surface in enumerate(surfaces):
        rays = np.flatnonzero(hits.label == index)
        if len(rays) == 0:
            continue
        points = origin + hits.depth[rays, None] * directions[rays]
        uv, normals = surface.surface(points, frame)
        lambert = np.clip(normals @ light, 0.0, 1.0)
        colours[rays] = sample_texture(surface.texture, uv) * (AMBIENT + (1 - AMBIENT) * lambert)[:, None]
    return colours


def render(surfaces: list[AnalyticObject | TexturedPlane], K: np.ndarray, viewmat: np.ndarray, width: int,
           height: int, frame: int, light: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray-cast one image with one ray through each pixel centre.

    Returns:
        ``(rgb, depth, label)``: (H, W, 3) float32 in [0, 1], (H, W) float32 z-depth (``inf`` where nothing is
        hit), (H, W) int32 surface index (-1 where nothing is hit).
    """
    ys, xs = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    origin, directions = camera_rays(K, viewmat, np.stack([xs.ravel(), ys.ravel()], axis=1))
    hits = cast(surfaces, origin, directions, frame)
    rgb = shade(surfaces, origin, directions, hits, frame, light)
    return (rgb.reshape(height, width, 3), hits.depth.astype(np.float32).reshape(height, width),
            hits.label.astype(np.int32).reshape(height, width))
