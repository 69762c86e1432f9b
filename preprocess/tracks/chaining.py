"""Point-level tools for chaining flow: DIS flow, bilinear sampling, the forward-backward check, prediction from
neighbours while lost, Lucas-Kanade refinement and centre-weighted patch correlation.

Points are ``(x, y)`` in continuous pixel coordinates (pixel ``(i, j)`` has its centre at ``(j + 0.5, i + 0.5)``).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import cKDTree

PATCH_RADIUS = 4
"""Patches compared for a point's look are (2 * PATCH_RADIUS + 1) pixels square."""
_OFFSETS = np.arange(-PATCH_RADIUS, PATCH_RADIUS + 1)
PATCH_WEIGHT = np.exp(-(_OFFSETS[:, None] ** 2 + _OFFSETS[None, :] ** 2) / (2 * (PATCH_RADIUS / 2) ** 2)).ravel()
NEIGHBOURS = 8
"""Neighbours whose affine motion carries a lost point."""
LK_WINDOW = 11
LK_MAX_SHIFT = 2.0
DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
EDGE_MARGIN = 6.0
"""Points closer than this (pixels) to the image edge count as leaving it: flow there is unreliable."""


def sample_bilinear(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear samples of a per-pixel field at continuous points (edge values extend outside the image).

    Args:
        field: (H, W) or (H, W, C) array.
        points: (M, 2) ``(x, y)`` pixel coordinates.

    Returns:
        (M,) or (M, C) float32.
    """
    height, width = field.shape[:2]
    x = np.clip(points[:, 0] - 0.5, 0, width - 1)
    y = np.clip(points[:, 1] - 0.5, 0, height - 1)
    x0 = np.clip(np.floor(x).astype(np.int64), 0, max(width - 2, 0))
    y0 = np.clip(np.floor(y).astype(np.int64), 0, max(height - 2, 0))
    fx, fy = x - x0, y - y0
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    if field.ndim == 3:
        fx, fy = fx[:, None], fy[:, None]
    top = field[y0, x0] * (1 - fx) + field[y0, x1] * fx
    bottom = field[y1, x0] * (1 - fx) + field[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def inside_image(points: np.ndarray, width: int, height: int, margin: float = 0.0) -> np.ndarray:
    """(M,) bool: the point lies on the image at least ``margin`` pixels from its edges."""
    x, y = points[:, 0], points[:, 1]
    return (x >= margin) & (x < width - margin) & (y >= margin) & (y < height - margin)


def lookup(region: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(M,) values of ``region`` (H, W) at the pixels containing ``points`` (False/0 outside the image)."""
    height, width = region.shape
    inside = inside_image(points, width, height)
    values = np.zeros(len(points), dtype=region.dtype)
    cols = points[inside, 0].astype(np.int64)
    rows = points[inside, 1].astype(np.int64)
    values[inside] = region[rows, cols]
    return values


def dense_flow(source: np.ndarray, target: np.ndarray, preset: str, finest_scale: int) -> np.ndarray:
    """DIS flow from ``source`` to ``target`` computed down to pyramid level ``finest_scale`` (0: full resolution).

    The shared presets stop at level 1 or 2; chained over many frames that leaves a drift of a few hundredths of a
    pixel per frame and smears motion boundaries over ~8 pixels, which full resolution reduces about threefold.

    Args:
        source, target: (H, W) uint8 gray frames.
        preset: ``ultrafast``, ``fast`` or ``medium``.
        finest_scale: finest pyramid level (0 = full resolution).

    Returns:
        (H, W, 2) float32 flow: pixel ``(x, y)`` of source moves to ``(x, y) + flow[y, x]``.
    """
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    dis.setFinestScale(finest_scale)
    return dis.calc(source, target, None)


def flow_step(points: np.ndarray, forward: np.ndarray, backward: np.ndarray, fb_threshold: float,
              fb_relative: float) -> tuple[np.ndarray, np.ndarray]:
    """Move points along ``forward`` and check that ``backward`` brings them home.

    Args:
        points: (M, 2) positions in the source frame.
        forward: (H, W, 2) flow source -> target.
        backward: (H, W, 2) flow target -> source.
        fb_threshold: tolerated round-trip error in pixels.
        fb_relative: extra tolerance as a fraction of the displacement.

    Returns:
        ``(moved, consistent)``: (M, 2) positions in the target frame and (M,) bool, False where the round trip
        fails (occlusion or unreliable flow) or the point comes within ``EDGE_MARGIN`` of the image edge.
    """
    height, width = forward.shape[:2]
    displacement = sample_bilinear(forward, points)
    moved = points + displacement
    back = sample_bilinear(backward, moved)
    error = np.linalg.norm(moved + back - points, axis=-1)
    tolerance = fb_threshold + fb_relative * np.linalg.norm(displacement, axis=-1)
    return moved, (error <= tolerance) & inside_image(moved, width, height, EDGE_MARGIN)


def predict_from_neighbours(points: np.ndarray, anchors_before: np.ndarray, anchors_after: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Carry points along with the local affine motion of nearby reliable points.

    Args:
        points: (M, 2) positions before the step.
        anchors_before: (K, 2) reliable points before the step.
        anchors_after: (K, 2) the same points after it.

    Returns:
        ``(predicted, known)``: (M, 2) positions after the step and (M,) bool, False where there were no anchors
        (positions then unchanged). With fewer than 3 anchors the motion is the median translation.
    """
    predicted = points.copy()
    if len(points) == 0 or len(anchors_before) == 0:
        return predicted, np.zeros(len(points), dtype=bool)
    shift = anchors_after - anchors_before
    if len(anchors_before) < 3:
        return points + np.median(shift, axis=0), np.ones(len(points), dtype=bool)
    k = min(NEIGHBOURS, len(anchors_before))
    _, index = cKDTree(anchors_before).query(points, k=k)
    # Affine fit of the shift around each point, in coordinates centred on it: the intercept is its own shift.
    local = anchors_before[index] - points[:, None, :]
    design = np.concatenate([np.ones((len(points), k, 1)), local], axis=-1)
    coefficients = np.linalg.pinv(design) @ shift[index]
    return points + coefficients[:, 0, :], np.ones(len(points), dtype=bool)


def refine_lk(source: np.ndarray, target: np.ndarray, points: np.ndarray, guess: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Align each point's neighbourhood in ``source`` to ``target`` with Lucas-Kanade, starting from ``guess``.

    Args:
        source, target: (H, W) uint8 gray frames.
        points: (M, 2) positions in ``source``.
        guess: (M, 2) predicted positions in ``target``.

    Returns:
        ``(refined, ok)``: (M, 2) positions and (M,) bool, False where LK failed or moved more than
        ``LK_MAX_SHIFT`` pixels from the guess (then the guess is returned).
    """
    if len(points) == 0:
        return guess.copy(), np.zeros(0, dtype=bool)
    refined, status, _ = cv2.calcOpticalFlowPyrLK(
        source, target, (points - 0.5).astype(np.float32).reshape(-1, 1, 2),
        (guess - 0.5).astype(np.float32).reshape(-1, 1, 2), winSize=(LK_WINDOW, LK_WINDOW), maxLevel=1,
        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-3), flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
    refined = refined.reshape(-1, 2) + 0.5
    ok = (status.ravel() == 1) & (np.linalg.norm(refined - guess, axis=-1) <= LK_MAX_SHIFT)
    return np.where(ok[:, None], refined, guess).astype(np.float32), ok


def patches(gray: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear (2r+1)^2 patches around points, r = ``PATCH_RADIUS``, row by row.

    Args:
        gray: (H, W) image.
        points: (M, 2) centres.

    Returns:
        (M, (2r+1)^2) float32.
    """
    off_y, off_x = np.meshgrid(_OFFSETS, _OFFSETS, indexing="ij")
    offsets = np.stack([off_x.ravel(), off_y.ravel()], axis=-1)
    samples = sample_bilinear(gray, (points[:, None, :] + offsets[None]).reshape(-1, 2))
    return samples.reshape(len(points), len(offsets))


def ncc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M,) centre-weighted normalised cross-correlation of matching rows of (M, P) patches from :func:`patches`.

    A Gaussian weight (sigma ``PATCH_RADIUS / 2``) makes the centre decide, so a point half-way across an edge
    that moved with the other side fails. Flat patches score 0.
    """
    weight = PATCH_WEIGHT / PATCH_WEIGHT.sum()
    a = a - (a * weight).sum(axis=1, keepdims=True)
    b = b - (b * weight).sum(axis=1, keepdims=True)
    denominator = np.sqrt((weight * a * a).sum(axis=1) * (weight * b * b).sum(axis=1))
    return np.where(denominator > 1e-6, (weight * a * b).sum(axis=1) / np.maximum(denominator, 1e-6), 0.0)
