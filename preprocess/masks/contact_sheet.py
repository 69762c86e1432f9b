"""A picture of object masks a person can check: a grid of frames with coloured overlays and ids."""

from __future__ import annotations

import cv2
import numpy as np

from scene4d.contracts.frames import Frames
from scene4d.contracts.masks import ObjectMasks

_PALETTE = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180],
                     [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 190], [0, 128, 128]], np.float32)


def object_color(object_id: int) -> np.ndarray:
    """(3,) float32 RGB colour of an object id (stable across runs)."""
    return _PALETTE[(object_id - 1) % len(_PALETTE)]


def overlay_masks(image: np.ndarray, masks: np.ndarray, object_ids: list[int], alpha: float = 0.5) -> np.ndarray:
    """One frame with each object tinted in its colour, outlined, and labelled with its id.

    Args:
        image: (H, W, 3) uint8 RGB.
        masks: (O, H, W) bool.
        object_ids: O ids.
        alpha: tint strength.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    out = image.astype(np.float32)
    for object_id, mask in zip(object_ids, masks):
        out[mask] = (1 - alpha) * out[mask] + alpha * object_color(object_id)
    out = out.clip(0, 255).astype(np.uint8)
    scale = max(0.4, image.shape[0] / 500)
    for object_id, mask in zip(object_ids, masks):
        if not mask.any():
            continue
        color = tuple(int(c) for c in object_color(object_id))
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, color, max(1, round(2 * scale)))
        ys, xs = np.nonzero(mask)
        anchor = (int(xs.mean()), int(ys.mean()))
        cv2.putText(out, str(object_id), anchor, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), round(4 * scale))
        cv2.putText(out, str(object_id), anchor, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), round(2 * scale))
    return out


def contact_sheet_masks(frames: Frames, masks: ObjectMasks | None, num_frames: int = 6, columns: int = 3,
                        tile_long_side: int = 480) -> np.ndarray:
    """Evenly spaced frames with the object masks overlaid, in a grid, each tile titled with its frame index.

    Args:
        frames: the clip.
        masks: its object masks, or None (no object: the frames are shown plain).
        num_frames: how many frames to show (fewer if the clip is shorter).
        columns: tiles per row.
        tile_long_side: longer side of a tile in pixels.

    Returns:
        (rows * h, columns * w, 3) uint8 RGB image.
    """
    picks = np.unique(np.linspace(0, frames.num_frames - 1, min(num_frames, frames.num_frames)).round().astype(int))
    scale = tile_long_side / max(frames.width, frames.height)
    size = (max(1, round(frames.width * scale)), max(1, round(frames.height * scale)))
    tiles = []
    for t in picks:
        image = cv2.resize(frames.images[t], size, interpolation=cv2.INTER_AREA)
        if masks is not None:
            frame_masks = np.stack([cv2.resize(m[t].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
                                    for m in masks.masks])
            image = overlay_masks(image, frame_masks, masks.object_ids)
        cv2.putText(image, f"t={t}", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4)
        cv2.putText(image, f"t={t}", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
        tiles.append(image)
    columns = min(columns, len(tiles))
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)
