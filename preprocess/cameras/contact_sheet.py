"""A picture of the camera stage a person can check: the camera path and reprojected background tracks."""

from __future__ import annotations

import textwrap

import cv2
import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.spatial.transform import Rotation

from preprocess.cameras.reprojection import reproject, triangulate_tracks
from scene4d.contracts.cameras import Cameras
from scene4d.contracts.frames import Frames
from scene4d.contracts.tracks import PointTracks

TILE_WIDTH = 320
MAX_FRUSTA = 25
OBSERVED = (60, 220, 60)
REPROJECTED = (230, 40, 40)


def _frustum_rays(cameras: Cameras, index: int) -> np.ndarray:
    """(5, 3) world directions of the optical axis and of rays through the middles of the left, right, top and
    bottom image edges, each one unit deep along the optical axis."""
    w, h = cameras.width, cameras.height
    pixels = np.array([[w / 2, h / 2, 1], [0, h / 2, 1], [w, h / 2, 1], [w / 2, 0, 1], [w / 2, h, 1]], dtype=float)
    rays = pixels @ np.linalg.inv(cameras.Ks[index]).T
    return rays @ cameras.viewmats[index, :3, :3]


def plot_camera_path(cameras: Cameras, title: str = "") -> np.ndarray:
    """Top view (x-z) and side view (z-y, y up on screen) of the camera centres with frustum wedges, and each
    camera's rotation from the first one against time (what a rotation-only or still camera shows).

    Returns:
        (H, W, 3) uint8 RGB plot.
    """
    centres = cameras.centers
    extent = float(np.ptp(centres, axis=0).max()) if len(centres) > 1 else 0.0
    length = 0.15 * extent if extent > 1e-9 else 1.0
    colours = colormaps["viridis"](np.linspace(0, 1, len(centres)))
    shown = np.unique(np.linspace(0, len(centres) - 1, min(MAX_FRUSTA, len(centres))).round().astype(int))
    figure = Figure(figsize=(13, 4.4), dpi=80)
    canvas = FigureCanvasAgg(figure)
    views = (("top view", 0, 2, 1, 2, "x", "z"), ("side view", 2, 1, 3, 4, "z", "y (up)"))
    for k, (name, a, b, edge0, edge1, label_a, label_b) in enumerate(views):
        axes = figure.add_subplot(1, 3, k + 1)
        flip = -1.0 if b == 1 else 1.0
        axes.plot(centres[:, a], flip * centres[:, b], color="0.6", linewidth=1, zorder=1)
        axes.scatter(centres[:, a], flip * centres[:, b], c=np.arange(len(centres)), cmap="viridis", s=8, zorder=2)
        for t in shown:
            tip = centres[t] + length * _frustum_rays(cameras, t)
            for ray_index in (0, edge0, edge1):
                axes.plot([centres[t, a], tip[ray_index, a]], [flip * centres[t, b], flip * tip[ray_index, b]],
                          color=colours[t], linewidth=1.5 if ray_index == 0 else 0.6)
        axes.set_aspect("equal", adjustable="datalim")
        axes.set_xlabel(label_a)
        axes.set_ylabel(label_b)
        axes.set_title(name)
    axes = figure.add_subplot(1, 3, 3)
    relative = cameras.viewmats[:, :3, :3] @ cameras.viewmats[:1, :3, :3].transpose(0, 2, 1)
    turns = np.degrees(Rotation.from_matrix(relative).as_rotvec())
    for axis, name in enumerate(("tilt (x)", "pan (y)", "roll (z)")):
        axes.plot(turns[:, axis], label=name)
    axes.set_xlabel("frame")
    axes.set_ylabel("degrees from frame 0")
    axes.set_title("rotation")
    axes.legend(fontsize=8)
    figure.suptitle(textwrap.fill(title or f"{cameras.method}: {len(centres)} cameras", 150) + "\n(colour = time)",
                    fontsize=10)
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _overlay(image: np.ndarray, observed: np.ndarray, reprojected: np.ndarray, label: str) -> np.ndarray:
    scale = TILE_WIDTH / image.shape[1]
    tile = cv2.resize(image, (TILE_WIDTH, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    for (x0, y0), (x1, y1) in zip(observed * scale, reprojected * scale):
        if not np.isfinite([x1, y1]).all():
            continue
        start, end = (round(x0 - 0.5), round(y0 - 0.5)), (round(x1 - 0.5), round(y1 - 0.5))
        cv2.line(tile, start, end, REPROJECTED, 1, cv2.LINE_AA)
        cv2.circle(tile, start, 2, OBSERVED, -1, cv2.LINE_AA)
    (text_width, text_height), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    cv2.rectangle(tile, (0, 0), (text_width + 8, text_height + 8), (0, 0, 0), -1)
    cv2.putText(tile, label, (4, text_height + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def contact_sheet_cameras(frames: Frames, cameras: Cameras, tracks: PointTracks | None = None,
                          num_frames: int = 4, max_tracks: int = 400) -> np.ndarray:
    """The camera path plot above a row of frames with background tracks and their reprojections.

    Each background track (label 0) is triangulated with the cameras and reprojected: a green dot marks where
    it was observed, a red line leads to where the cameras put it (short lines: the cameras explain it).

    Args:
        frames: the clip.
        cameras: its cameras.
        tracks: point tracks; only label 0 is drawn (None: frames without overlay).
        num_frames: frames shown, evenly spaced.
        max_tracks: at most this many tracks drawn per frame.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    if cameras.num_frames != frames.num_frames:
        raise ValueError(f"cameras has {cameras.num_frames} frames, the clip {frames.num_frames}")
    shown = np.unique(np.linspace(0, frames.num_frames - 1, min(num_frames, frames.num_frames)).round().astype(int))
    background = tracks.of(0) if tracks is not None else None
    projected = None
    if background is not None and background.num_tracks:
        usable = background.select(background.visibility.sum(axis=1) >= 2)
        points = triangulate_tracks(usable.tracks, usable.visibility, cameras.Ks, cameras.viewmats)
        projected = (usable, reproject(points, cameras.Ks, cameras.viewmats))
    tiles = []
    for t in shown:
        observed, predicted = np.zeros((0, 2)), np.zeros((0, 2))
        label = f"frame {t}"
        if projected is not None:
            usable, pixels = projected
            visible = np.flatnonzero(usable.visibility[:, t])[:max_tracks]
            observed, predicted = usable.tracks[visible, t], pixels[visible, t]
            errors = np.linalg.norm(observed - predicted, axis=-1)
            if len(errors):
                label += f"  median {np.nanmedian(errors):.2f} px"
        tiles.append(_overlay(frames.images[t], observed, predicted, label))
    row = np.concatenate(tiles, axis=1)
    plot = plot_camera_path(cameras, f"{cameras.method}: {cameras.notes}" if cameras.notes else "")
    plot = cv2.resize(plot, (row.shape[1], round(plot.shape[0] * row.shape[1] / plot.shape[1])),
                      interpolation=cv2.INTER_AREA)
    return np.concatenate([plot, row], axis=0)
