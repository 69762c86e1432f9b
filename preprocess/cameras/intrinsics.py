"""Pinhole intrinsics from known values, a field of view, or a prior (square pixels, centred principal point).

Continuous pixel coordinates put the image's edges at 0 and ``width``, so resizing scales ``fx, fy, cx, cy``
by the same factor and the centre of the image is ``(width / 2, height / 2)``.
"""

from __future__ import annotations

import numpy as np

from preprocess.cameras.config import CamerasConfig


def focal_from_fov(fov_deg: float, width: int, height: int) -> float:
    """Focal length in pixels whose diagonal field of view is ``fov_deg``."""
    return 0.5 * float(np.hypot(width, height)) / np.tan(np.radians(fov_deg) / 2)


def fov_from_focal(focal: float, width: int, height: int) -> float:
    """Diagonal field of view in degrees of a focal length in pixels."""
    return float(np.degrees(2 * np.arctan(0.5 * np.hypot(width, height) / focal)))


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """(3, 3) K."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def centred_intrinsics(focal: float, width: int, height: int) -> np.ndarray:
    """(3, 3) K with square pixels and the principal point at the image centre."""
    return intrinsics_matrix(focal, focal, width / 2, height / 2)


def known_intrinsics(config: CamerasConfig, width: int, height: int,
                     source_size: tuple[int, int] = (0, 0)) -> np.ndarray | None:
    """K given by the config, at the processed size, or None when it gives none.

    Args:
        config: ``intrinsics`` (at the source resolution) take precedence over ``fov_deg``.
        width, height: size of the frames being processed.
        source_size: ``(width, height)`` the given intrinsics refer to; ``(0, 0)`` means the processed size.

    Returns:
        (3, 3) K or None.
    """
    if config.intrinsics:
        fx, fy, cx, cy = (float(v) for v in config.intrinsics)
        source_width = source_size[0] or width
        source_height = source_size[1] or height
        sx, sy = width / source_width, height / source_height
        return intrinsics_matrix(fx * sx, fy * sy, cx * sx, cy * sy)
    if config.fov_deg:
        return centred_intrinsics(focal_from_fov(config.fov_deg, width, height), width, height)
    return None
