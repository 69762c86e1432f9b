"""A picture of point tracks: a grid of frames with each visible point and its recent trail."""

from __future__ import annotations

import cv2
import numpy as np
from matplotlib import colormaps

from scene4d.contracts.frames import Frames
from scene4d.contracts.tracks import PointTracks


def contact_sheet_tracks(frames: Frames, tracks: PointTracks, num_frames: int = 6, columns: int = 3,
                         trail: int = 10, max_tracks: int = 600, tile_width: int = 480) -> np.ndarray:
    """Frames spread over the clip, each with the tracks visible in it drawn as coloured trails.

    A track's colour follows its horizontal position where it is first visible (a rainbow); object tracks are
    drawn with a larger dot than background tracks. Each tile is captioned with its frame index and how many
    tracks are visible there.

    Args:
        frames: the clip (T frames).
        tracks: tracks over the same T frames.
        num_frames: how many frames to show.
        columns: tiles per row.
        trail: how many past frames each trail spans.
        max_tracks: at most this many tracks are drawn (an even subsample).
        tile_width: width of each tile in pixels.

    Returns:
        (rows * h, columns * tile_width, 3) uint8 RGB.
    """
    if tracks.num_frames != frames.num_frames:
        raise ValueError(f"tracks have {tracks.num_frames} frames, the clip has {frames.num_frames}")
    chosen = np.linspace(0, tracks.num_tracks - 1, min(max_tracks, tracks.num_tracks)).round().astype(int)
    xy, vis, labels = tracks.tracks[chosen], tracks.visibility[chosen], tracks.labels[chosen]
    scale = tile_width / frames.width
    first = np.argmax(vis, axis=1)
    first_x = xy[np.arange(len(xy)), first, 0] / frames.width
    colours = (colormaps["rainbow"](np.clip(first_x, 0, 1))[:, :3] * 255).astype(int)
    shown = np.unique(np.linspace(0, frames.num_frames - 1, min(num_frames, frames.num_frames)).round().astype(int))
    tiles = []
    for t in shown:
        tile = cv2.resize(frames.images[t], (tile_width, round(frames.height * scale)), interpolation=cv2.INTER_AREA)
        tile = (tile * 0.6).astype(np.uint8)
        start = max(0, t - trail)
        pts = np.round(xy[:, start:t + 1] * scale * 16).astype(np.int32)  # 4 fractional bits for sub-pixel lines
        for n in np.flatnonzero(vis[:, t]):
            colour = tuple(int(c) for c in colours[n])
            segment_ok = vis[n, start:t] & vis[n, start + 1:t + 1]
            for k in np.flatnonzero(segment_ok):
                cv2.line(tile, tuple(pts[n, k]), tuple(pts[n, k + 1]), colour, 1, cv2.LINE_AA, shift=4)
            cv2.circle(tile, tuple(pts[n, -1]), 3 * 16 if labels[n] else 2 * 16, colour, -1, cv2.LINE_AA, shift=4)
        caption = f"t={t}  visible {int(tracks.visibility[:, t].sum())}/{tracks.num_tracks}"
        cv2.putText(tile, caption, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)
