"""Query points for the flow tracker: one well-textured point per grid cell of each object and of the background."""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import cKDTree

from preprocess.tracks.chaining import EDGE_MARGIN
from preprocess.tracks.config import TracksConfig


def texture_strength(image: np.ndarray) -> np.ndarray:
    """How well a point can be localised: the smaller eigenvalue of the local structure tensor.

    Args:
        image: (H, W, 3) uint8 RGB.

    Returns:
        (H, W) float32, ~0 in flat regions (intensities scaled to [0, 1]).
    """
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    return cv2.cornerMinEigenVal(gray, blockSize=5, ksize=3)


def grid_spacing(area: float, target_count: int, min_spacing: int, max_spacing: int) -> int:
    """Grid cell size (pixels) that puts about ``target_count`` cells in ``area`` pixels, clamped."""
    if target_count <= 0 or area <= 0:
        return max_spacing
    return int(np.clip(round(np.sqrt(area / target_count)), min_spacing, max_spacing))


def grid_points(texture: np.ndarray, region: np.ndarray, spacing: int, min_texture: float) -> np.ndarray:
    """The most textured pixel of ``region`` in every ``spacing`` x ``spacing`` cell of a grid anchored at the
    region's bounding box, none closer than ``spacing / 2`` to a stronger one.

    Args:
        texture: (H, W) float texture strength (see :func:`texture_strength`).
        region: (H, W) bool where points may be placed.
        spacing: cell size in pixels (>= 1).
        min_texture: cells whose best pixel is weaker than this get no point.

    Returns:
        (M, 2) float32 ``(x, y)`` pixel centres (``j + 0.5, i + 0.5``).
    """
    rows_any, cols_any = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    if len(rows_any) == 0:
        return np.zeros((0, 2), np.float32)
    top, left = rows_any[0], cols_any[0]
    height, width = rows_any[-1] + 1 - top, cols_any[-1] + 1 - left
    rows, cols = -(-height // spacing), -(-width // spacing)
    score = np.full((rows * spacing, cols * spacing), -1.0, dtype=np.float32)
    window = (slice(top, top + height), slice(left, left + width))
    score[:height, :width] = np.where(region[window], texture[window], -1.0)
    cells = score.reshape(rows, spacing, cols, spacing).transpose(0, 2, 1, 3).reshape(rows, cols, -1)
    best = cells.argmax(axis=-1)
    value = np.take_along_axis(cells, best[..., None], axis=-1)[..., 0]
    keep = (value >= min_texture) & (value >= 0)
    cell_i, cell_j = np.nonzero(keep)
    offset = best[keep]
    y = top + cell_i * spacing + offset // spacing
    x = left + cell_j * spacing + offset % spacing
    points = np.stack([x + 0.5, y + 0.5], axis=-1).astype(np.float32)
    return _suppress_close(points, value[keep], spacing / 2)


def _suppress_close(points: np.ndarray, strength: np.ndarray, radius: float) -> np.ndarray:
    """Greedy non-maximum suppression: strongest first, drop points within ``radius`` of a kept one (the best
    pixels of neighbouring cells can be adjacent)."""
    if len(points) < 2:
        return points
    tree = cKDTree(points)
    dropped = np.zeros(len(points), dtype=bool)
    for i in np.argsort(-strength):
        if not dropped[i]:
            neighbours = tree.query_ball_point(points[i], radius)
            dropped[neighbours] = True
            dropped[i] = False
    return points[~dropped]


def remove_near(candidates: np.ndarray, existing: np.ndarray, radius: float) -> np.ndarray:
    """Candidates farther than ``radius`` from every existing point.

    Args:
        candidates: (M, 2) points.
        existing: (K, 2) points (K may be 0).
        radius: exclusion radius in pixels.

    Returns:
        (M', 2) the kept candidates, in order.
    """
    if len(existing) == 0 or len(candidates) == 0:
        return candidates
    distance, _ = cKDTree(existing).query(candidates, k=1, distance_upper_bound=radius)
    return candidates[~np.isfinite(distance)]


def sample_queries(image: np.ndarray, label_map: np.ndarray | None, object_ids: list[int],
                   existing: np.ndarray, existing_labels: np.ndarray, config: TracksConfig
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Grid query points of one frame, per object (a target count each, so small objects are denser) and background.

    Object points keep ``2 * config.mask_margin`` pixels inside their mask (an object too thin for that keeps its
    whole mask), background points ``config.background_band`` pixels off every object (flow is unreliable at motion
    boundaries); all keep ``EDGE_MARGIN`` away from the image edges,
    and 0.75 grid cells away from existing tracks of the same label.

    Args:
        image: (H, W, 3) uint8 RGB.
        label_map: (H, W) int object ids (0 background), or None when there are no objects.
        object_ids: ids to sample (ids absent from this frame get no points).
        existing: (K, 2) positions of tracks already visible in this frame.
        existing_labels: (K,) their labels.
        config: sampling settings.

    Returns:
        ``(points, labels)``: (M, 2) float32 pixel coordinates and (M,) int32 labels.
    """
    texture = texture_strength(image)
    if label_map is None:
        label_map = np.zeros(image.shape[:2], dtype=np.int32)
    height, width = label_map.shape
    rows, cols = np.mgrid[0:height, 0:width]
    edge = int(np.ceil(EDGE_MARGIN))
    away_from_edge = (rows >= edge) & (rows < height - edge) & (cols >= edge) & (cols < width - edge)
    points, labels = [np.zeros((0, 2), np.float32)], [np.zeros(0, np.int32)]
    for label, target in [(0, config.background_points)] + [(i, config.points_per_object) for i in object_ids]:
        region = label_map == label
        area = int(region.sum())
        if area == 0 or target == 0:
            continue
        margin = config.background_band if label == 0 else 2 * config.mask_margin
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
        inner = cv2.erode(region.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE).astype(bool)
        if label != 0 and not inner.any():
            inner = region
        inner = inner & away_from_edge
        spacing = grid_spacing(area, target, config.min_spacing, config.max_spacing)
        found = grid_points(texture, inner, spacing, config.min_texture)
        found = remove_near(found, existing[existing_labels == label], 0.75 * spacing)
        points.append(found)
        labels.append(np.full(len(found), label, dtype=np.int32))
    return np.concatenate(points), np.concatenate(labels)
