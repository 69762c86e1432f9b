"""Objects as rounded shapes standing on the scene: each at the depth where it touches the ground.

An object's base depth in a frame is the background depth at its contact point, the bottom-centre of its mask
(the mean column of its lowest mask row); an object whose contact rests on another object (that object's mask
lies just below it, e.g. a rider on a horse, a ball on a foot) takes that object's base depth. Base depths are
median-filtered over time. An object whose contact row wanders over more than its own height during the clip
(a juggled ball) is taken to be off the ground at times: it keeps, in every frame, the base depth of the frame
where it comes lowest (its 90th-percentile contact row). The object's silhouette lies at its base depth and its inside bulges towards the
camera: ``depth = base - bulge * R * base / fx * sqrt(1 - (1 - d / R)^2)``, with ``d`` the distance (pixels) from
the silhouette pixels and ``R`` its largest value, i.e. an elliptic cross-section whose half-thickness is ``R``
pixels at that depth (the relief is capped at half the base depth).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import median_filter

SUPPORT_ROWS = 3
"""How many rows below an object's contact are searched for a supporting object."""


def contact_point(mask: np.ndarray) -> tuple[int, int] | None:
    """``(row, column)`` pixel of a mask's bottom-centre (its lowest row, mean column there), or None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    row = int(rows[-1])
    return row, int(round(np.flatnonzero(mask[row]).mean()))


def lowest_contact(masks: np.ndarray) -> tuple[int, int, int] | None:
    """``(frame, row, column)`` of an object's contact in the frame where it comes lowest in the image (the
    90th-percentile contact row, so a few stray mask pixels do not decide), or None if it is never visible.

    Args:
        masks: (T, H, W) bool masks of one object.
    """
    found = [(t, point) for t, point in ((t, contact_point(m)) for t, m in enumerate(masks)) if point]
    if not found:
        return None
    found.sort(key=lambda item: item[1][0])
    t, (row, col) = found[round(0.9 * (len(found) - 1))]
    return t, row, col


def leaves_the_ground(masks: np.ndarray) -> bool:
    """Whether an object's contact row spans (5th to 95th percentile over its visible frames) more than its median
    height, i.e. it does not stay on the ground. ``masks``: (T, H, W) bool of one object."""
    rows = [np.flatnonzero(m.any(axis=1)) for m in masks]
    rows = [r for r in rows if len(r)]
    if len(rows) < 2:
        return False
    contacts = np.array([r[-1] for r in rows])
    heights = np.array([r[-1] - r[0] + 1 for r in rows])
    return float(np.percentile(contacts, 95) - np.percentile(contacts, 5)) > float(np.median(heights))


def base_depths(background: np.ndarray, masks: np.ndarray, temporal_window: int) -> np.ndarray:
    """Each object's base depth in each frame.

    Args:
        background: (T, H, W) background depth.
        masks: (O, T, H, W) bool object masks.
        temporal_window: length of the median filter over an object's visible frames.

    Returns:
        (O, T) float64 base depths; NaN where the object is not visible.
    """
    num_objects, num_frames, height, _ = masks.shape
    raw = np.full((num_objects, num_frames), np.nan)
    for t in range(num_frames):
        contacts = {o: contact_point(masks[o, t]) for o in range(num_objects)}
        order = sorted((o for o in contacts if contacts[o] is not None), key=lambda o: -contacts[o][0])
        for rank, o in enumerate(order):
            row, col = contacts[o]
            below = slice(row + 1, min(height, row + 1 + SUPPORT_ROWS))
            supporters = [p for p in order[:rank] if masks[p, t, below, max(0, col - 2):col + 3].any()]
            raw[o, t] = raw[supporters[0], t] if supporters else background[t, row, col]
    smoothed = raw.copy()
    for o in range(num_objects):
        visible = np.isfinite(raw[o])
        if leaves_the_ground(masks[o]):
            smoothed[o, visible] = raw[o, lowest_contact(masks[o])[0]]
        elif visible.sum() > 1 and temporal_window > 1:
            smoothed[o, visible] = np.exp(median_filter(np.log(raw[o, visible]), size=temporal_window, mode="nearest"))
    return smoothed


def paint_objects(background: np.ndarray, masks: np.ndarray, bases: np.ndarray, focal: np.ndarray,
                  bulge: float) -> tuple[np.ndarray, np.ndarray]:
    """Depth maps with every object drawn as a rounded shape at its base depth (nearest surface wins).

    Args:
        background: (T, H, W) background depth.
        masks: (O, T, H, W) bool object masks.
        bases: (O, T) base depths (NaN where not visible).
        focal: (T,) horizontal focal length of each frame, pixels.
        bulge: relief as a fraction of the half-thickness.

    Returns:
        ``(depth, on_object)``: (T, H, W) float32 and (T, H, W) bool.
    """
    depth = background.astype(np.float32).copy()
    on_object = np.zeros(background.shape, dtype=bool)
    objects = np.full(background.shape, np.inf, dtype=np.float32)
    for o in range(masks.shape[0]):
        for t in np.flatnonzero(np.isfinite(bases[o])):
            mask = masks[o, t].astype(np.uint8)
            # Distance from the silhouette pixels (0 on them), the image border counting as silhouette.
            inside = cv2.distanceTransform(np.pad(mask, 1), cv2.DIST_L2, 5)[1:-1, 1:-1] - 1.0
            radius = max(float(inside.max()), 1.0)
            profile = np.sqrt(np.clip(1.0 - (1.0 - inside / radius) ** 2, 0.0, 1.0))
            relief = bulge * radius * bases[o, t] / focal[t]
            surface = bases[o, t] * (1.0 - np.minimum(relief / bases[o, t], 0.5) * profile)
            objects[t] = np.where(mask > 0, np.minimum(objects[t], surface), objects[t])
            on_object[t] |= mask > 0
    depth[on_object] = objects[on_object]
    return depth, on_object
