"""A picture of depth maps: frames, colour-mapped depth and confidence, with a colour bar in depth units."""

from __future__ import annotations

import cv2
import numpy as np
from matplotlib import colormaps

from scene4d.contracts.depth import DepthMaps
from scene4d.contracts.frames import Frames


def contact_sheet_depth(frames: Frames, depth: DepthMaps, num_frames: int = 4, tile_width: int = 320,
                        colormap: str = "turbo") -> np.ndarray:
    """Columns of frames spread over the clip: the frame, its depth (colour-mapped by inverse depth, near = red),
    its confidence (gray, white = 1); a colour bar on the right labelled in depth units.

    Args:
        frames: the clip (T frames).
        depth: depth of the same T frames.
        num_frames: how many frames to show.
        tile_width: width of each tile in pixels.
        colormap: matplotlib colour map name.

    Returns:
        (3 * h, num_shown * tile_width + bar width, 3) uint8 RGB.
    """
    if depth.num_frames != frames.num_frames:
        raise ValueError(f"depth has {depth.num_frames} frames, the clip has {frames.num_frames}")
    shown = np.unique(np.linspace(0, frames.num_frames - 1, min(num_frames, frames.num_frames)).round().astype(int))
    known = depth.confidence[shown] > 0
    values = depth.depth[shown][known] if known.any() else np.ones(1)
    near, far = np.percentile(values, 1), np.percentile(values, 99)
    far = max(far, near * 1.01)
    cmap = colormaps[colormap]
    tile_height = round(frames.height * tile_width / frames.width)

    def colour(d: np.ndarray) -> np.ndarray:
        # Inverse depth spreads the colours over near structure instead of spending them on the far backdrop.
        position = (1.0 / np.clip(d, near, far) - 1.0 / far) / (1.0 / near - 1.0 / far)
        return (cmap(position)[..., :3] * 255).astype(np.uint8)

    columns = []
    for t in shown:
        image = cv2.resize(frames.images[t], (tile_width, tile_height), interpolation=cv2.INTER_AREA)
        mapped = colour(cv2.resize(depth.depth[t], (tile_width, tile_height), interpolation=cv2.INTER_NEAREST))
        mapped[cv2.resize(depth.confidence[t], (tile_width, tile_height)) <= 0] = 0
        confidence = cv2.resize(depth.confidence[t], (tile_width, tile_height), interpolation=cv2.INTER_AREA)
        gray = np.repeat((confidence * 255).astype(np.uint8)[..., None], 3, axis=-1)
        cv2.putText(image, f"t={t}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.putText(gray, "confidence", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 0, 0), 1, cv2.LINE_AA)
        columns.append(np.concatenate([image, mapped, gray], axis=0))
    sheet = np.concatenate(columns, axis=1)
    return np.concatenate([sheet, _colour_bar(colour, near, far, sheet.shape[0], depth.method)], axis=1)


def _colour_bar(colour, near: float, far: float, height: int, title: str) -> np.ndarray:
    """A vertical bar (near at the top) with five depth labels, as an (height, 110, 3) uint8 image."""
    bar = np.full((height, 110, 3), 255, np.uint8)
    top, bottom = 30, height - 10
    inverse = np.linspace(1.0 / near, 1.0 / far, bottom - top)
    bar[top:bottom, 8:30] = colour(1.0 / inverse)[:, None, :]
    for fraction in np.linspace(0.0, 1.0, 5):
        row = top + round(fraction * (bottom - top - 1))
        label = 1.0 / inverse[row - top]
        cv2.line(bar, (30, row), (36, row), (0, 0, 0), 1)
        cv2.putText(bar, f"{label:.3g}", (40, row + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(bar, title[:14], (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return bar
