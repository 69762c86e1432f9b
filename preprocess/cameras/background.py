"""How the static background moves: dense flow between frames, restricted to textured background pixels.

One pass over the clip gives everything the camera stage needs besides SfM: whether the camera is fixed,
a homography between each pair of consecutive frames (for rotation-only poses) and background point tracks
(to measure the reprojection error of whatever cameras are chosen). Coordinates are continuous pixel
coordinates, centre of pixel ``(i, j)`` at ``(j + 0.5, i + 0.5)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from preprocess.flow import FlowConfig, consistent_flow

GRID_STEP = 4
"""Homographies are fitted to flow sampled every this many pixels."""
MIN_TEXTURE = 1e-4
"""Smallest structure-tensor eigenvalue (gray in [0, 1]) for flow to be trusted: uniform areas carry no motion."""
MIN_TRACK_LENGTH = 3


@dataclass
class BackgroundMotion:
    """Background motion of a clip of T frames.

    Attributes:
        homographies: (T-1, 3, 3) maps continuous pixel coordinates of frame t to frame t + 1 (identity where
            the fit failed).
        inliers: (T-1,) RANSAC inliers of each homography (0 where it failed).
        matches: T-1 pairs ``(source (M, 2), target (M, 2))``, the homography's inlier correspondences.
        transfer_px: (T-1,) median distance between flow targets and homography predictions over the inliers.
        step_px: (T-1,) median background flow magnitude between consecutive frames (inf: no reliable flow).
        span_px: (K,) median background flow magnitude from frame 0 to a few later frames (inf: no reliable
            flow, which means the view changed a lot).
        tracks: (N, T, 2) background point tracks chained through consecutive flows.
        visibility: (N, T) bool, where each track is followed.
    """

    homographies: np.ndarray
    inliers: np.ndarray
    matches: list[tuple[np.ndarray, np.ndarray]]
    transfer_px: np.ndarray
    step_px: np.ndarray
    span_px: np.ndarray
    tracks: np.ndarray
    visibility: np.ndarray

    @property
    def largest_shift_px(self) -> float:
        """Largest median background motion, consecutive or from the first frame (0 for a single frame)."""
        return float(max(self.step_px.max(initial=0.0), self.span_px.max(initial=0.0)))


def background_masks(num_frames: int, height: int, width: int, objects: np.ndarray | None,
                     dilation_px: int) -> np.ndarray:
    """(T, H, W) bool: pixels that belong to no object, objects grown by ``dilation_px``."""
    if objects is None:
        return np.ones((num_frames, height, width), dtype=bool)
    if dilation_px == 0:
        return ~objects
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilation_px + 1, 2 * dilation_px + 1))
    return np.stack([cv2.dilate(m.astype(np.uint8), kernel) == 0 for m in objects])


def _textured(image: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    return cv2.cornerMinEigenVal(gray, blockSize=5) > MIN_TEXTURE


def _reliable(flow: np.ndarray, valid: np.ndarray, background: np.ndarray, source: np.ndarray) -> np.ndarray:
    return valid & background & _textured(source) & np.isfinite(flow).all(axis=-1)


def _median_motion(flow: np.ndarray, reliable: np.ndarray, min_pixels: int) -> float:
    if reliable.sum() < min_pixels:
        return float("inf")
    return float(np.median(np.linalg.norm(flow[reliable], axis=-1)))


def _fit_homography(flow: np.ndarray, reliable: np.ndarray, threshold: float, min_inliers: int
                    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], float]:
    """Homography from sampled flow; identity and no matches when it has fewer than ``min_inliers``."""
    rows, cols = np.nonzero(reliable[::GRID_STEP, ::GRID_STEP])
    rows, cols = rows * GRID_STEP, cols * GRID_STEP
    source = np.stack([cols + 0.5, rows + 0.5], axis=-1).astype(np.float32)
    target = source + flow[rows, cols]
    failed = (np.eye(3), (np.zeros((0, 2)), np.zeros((0, 2))), float("inf"))
    if len(source) < min_inliers:
        return failed
    homography, inlier_mask = cv2.findHomography(source, target, cv2.USAC_MAGSAC, threshold)
    if homography is None or inlier_mask.sum() < min_inliers:
        return failed
    inlier = inlier_mask.ravel().astype(bool)
    predicted = cv2.perspectiveTransform(source[inlier][None], homography)[0]
    transfer = float(np.median(np.linalg.norm(predicted - target[inlier], axis=-1)))
    matches = (source[inlier].astype(np.float64), target[inlier].astype(np.float64))
    return homography / homography[2, 2], matches, transfer


def _advance(positions: np.ndarray, alive: np.ndarray, flow: np.ndarray, reliable: np.ndarray) -> np.ndarray:
    """Move tracks at continuous ``positions`` by the flow at their pixel; drop them where it is unreliable."""
    height, width = reliable.shape
    finite = np.nan_to_num(positions, nan=-1.0)
    cols = np.floor(finite[:, 0]).astype(int)
    rows = np.floor(finite[:, 1]).astype(int)
    inside = alive & (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    keep = np.zeros_like(alive)
    keep[inside] = reliable[rows[inside], cols[inside]]
    map_x = (positions[keep, 0] - 0.5).astype(np.float32)[None]
    map_y = (positions[keep, 1] - 0.5).astype(np.float32)[None]
    moved = positions.copy()
    if keep.any():
        sampled = cv2.remap(flow, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]
        moved[keep] += sampled
    moved[~keep] = np.nan
    return moved


def measure_background(images: np.ndarray, background: np.ndarray, flow_preset: str = "medium",
                       homography_threshold_px: float = 1.5, min_inliers: int = 50,
                       track_spacing_px: int = 12, num_span_samples: int = 4) -> BackgroundMotion:
    """Flow-based background motion of a clip.

    Args:
        images: (T, H, W, 3) uint8 RGB frames.
        background: (T, H, W) bool, True where the pixel belongs to the static background.
        flow_preset: DIS preset.
        homography_threshold_px: RANSAC inlier threshold.
        min_inliers: a homography with fewer inliers counts as failed.
        track_spacing_px: grid spacing of the background tracks, seeded in a few frames.
        num_span_samples: how many later frames are compared directly with frame 0.

    Returns:
        :class:`BackgroundMotion`.
    """
    num_frames, height, width = images.shape[:3]
    flow_config = FlowConfig(preset=flow_preset)
    min_pixels = max(50, height * width // 1000)
    homographies = np.tile(np.eye(3), (max(num_frames - 1, 0), 1, 1))
    matches = []
    transfer = np.full(max(num_frames - 1, 0), np.inf)
    steps = np.full(max(num_frames - 1, 0), np.inf)

    seeds = sorted({0, num_frames // 3, 2 * num_frames // 3} - {num_frames - 1}) if num_frames > 1 else []
    rows, cols = np.mgrid[track_spacing_px // 2:height:track_spacing_px, track_spacing_px // 2:width:track_spacing_px]
    grid = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=-1)
    tracks = np.full((len(seeds) * len(grid), num_frames, 2), np.nan)

    for t in range(num_frames - 1):
        flow, valid = consistent_flow(images[t], images[t + 1], flow_config)
        reliable = _reliable(flow, valid, background[t], images[t])
        steps[t] = _median_motion(flow, reliable, min_pixels)
        homographies[t], pair, transfer[t] = _fit_homography(flow, reliable, homography_threshold_px, min_inliers)
        matches.append(pair)
        if t in seeds:
            start = seeds.index(t) * len(grid)
            seeded = grid[background[t][grid[:, 1].astype(int), grid[:, 0].astype(int)]]
            tracks[start:start + len(seeded), t] = seeded
        alive = np.isfinite(tracks[:, t, 0])
        tracks[:, t + 1] = _advance(tracks[:, t], alive, flow, reliable)
        landed = np.isfinite(tracks[:, t + 1, 0])
        cols_next = np.clip(np.floor(tracks[landed, t + 1, 0]).astype(int), 0, width - 1)
        rows_next = np.clip(np.floor(tracks[landed, t + 1, 1]).astype(int), 0, height - 1)
        on_background = background[t + 1][rows_next, cols_next]
        tracks[np.flatnonzero(landed)[~on_background], t + 1] = np.nan

    span_frames = np.unique(np.linspace(0, num_frames - 1, num_span_samples + 1).round().astype(int))[1:]
    span = np.full(len(span_frames), np.inf)
    for k, t in enumerate(span_frames):
        if t == 1:
            span[k] = steps[0]
            continue
        flow, valid = consistent_flow(images[0], images[t], flow_config)
        span[k] = _median_motion(flow, _reliable(flow, valid, background[0], images[0]), min_pixels)

    visibility = np.isfinite(tracks[..., 0])
    long_enough = visibility.sum(axis=1) >= MIN_TRACK_LENGTH
    inliers = np.array([len(source) for source, _ in matches], dtype=np.int64)
    return BackgroundMotion(homographies=homographies, inliers=inliers, matches=matches, transfer_px=transfer,
                            step_px=steps,
                            span_px=span, tracks=np.nan_to_num(tracks[long_enough]).astype(np.float32),
                            visibility=visibility[long_enough])
