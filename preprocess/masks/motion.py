"""Weight-free motion segmentation: independently moving objects from dense flow against the camera's motion.

Per frame ``t`` and each neighbour ``t +- g`` (``g`` in ``gaps``):

1. DIS flow both ways; pixels failing the forward-backward check or lacking texture (smallest structure-tensor
   eigenvalue below ``texture_threshold``) give no evidence, since their flow is interpolated or wrong.
2. The camera's motion is a homography fitted with RANSAC to flow samples; the residual flow (flow minus the
   homography's) is the motion evidence, divided by a robust scale of the background's residuals (so parallax
   and flow noise of the clip set the bar) floored at ``min_residual * g`` pixels.
3. Where the flow failed (forward-backward check, or the flow-warped neighbour does not match the colours:
   small fast objects), the evidence is the colour change after undoing the camera's motion instead.
4. The evidence of all pairs is pooled (median over the pairs that saw the pixel), so one bad flow field cannot
   make a pixel move; pixels that look like a cast shadow in most pairs (darker than the camera-warped
   neighbour, same chroma, same local texture) count as not moving.

Then hysteresis thresholding at ``threshold`` gives moving regions; GrabCut, initialised with the confident
moving/static pixels, snaps them to image edges (and fills low-texture parts of objects). Regions are split into
connected components, merged when they move alike, and linked over time by Hungarian matching on the IoU between
flow-warped masks of the previous frame and the current regions. Tracks that are small or present in too few
frames are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment
from skimage.filters import apply_hysteresis_threshold

from preprocess.flow import dense_flow, forward_backward_error, warp
from preprocess.masks.config import MotionConfig

_FB_TOLERANCE = 1.0
_SHADOW_MIN_DARKENING = 10.0
_SHADOW_MAX_CHROMA = 8.0
_FLAT_VARIANCE = 25.0


@dataclass
class PairMotion:
    """Motion evidence of one frame against one neighbour.

    Attributes:
        score: (H, W) float32 residual flow in robust standard deviations (nan where there is no evidence).
        flow: (H, W, 2) float32 flow to the neighbour.
        shadow: (H, W) bool, darker than the neighbour at the same scene point with the same chroma.
    """

    score: np.ndarray
    flow: np.ndarray
    shadow: np.ndarray


def texture_mask(image: np.ndarray, threshold: float) -> np.ndarray:
    """(H, W) bool: where the smallest eigenvalue of the local structure tensor exceeds ``threshold``.

    Args:
        image: (H, W, 3) uint8 RGB.
        threshold: eigenvalue threshold for intensities in [0, 1].
    """
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    return cv2.cornerMinEigenVal(gray, blockSize=5, ksize=3) > threshold


def camera_motion(flow: np.ndarray, usable: np.ndarray, step: int = 4) -> np.ndarray | None:
    """Homography (3, 3) mapping pixels to where the camera's motion takes them, from flow samples.

    Args:
        flow: (H, W, 2) flow.
        usable: (H, W) bool, pixels whose flow may be sampled.
        step: sampling stride in pixels.

    Returns:
        The RANSAC homography, or None when there are too few usable samples.
    """
    height, width = usable.shape
    ys, xs = np.mgrid[step // 2:height:step, step // 2:width:step]
    keep = usable[ys, xs]
    if keep.sum() < 32:
        return None
    source = np.stack([xs[keep], ys[keep]], axis=-1).astype(np.float32)
    homography, _ = cv2.findHomography(source, source + flow[ys[keep], xs[keep]], cv2.RANSAC, 1.0,
                                       maxIters=2000, confidence=0.995)
    return homography


def _pixel_grid(height: int, width: int) -> np.ndarray:
    return np.stack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)), -1)


def pair_motion(image: np.ndarray, other: np.ndarray, textured: np.ndarray, gap: int, config: MotionConfig,
                flows: tuple[np.ndarray, np.ndarray] | None = None) -> PairMotion:
    """Residual-flow evidence of ``image`` against ``other`` (``gap`` frames away).

    Args:
        image, other: (H, W, 3) uint8 RGB.
        textured: (H, W) bool texture mask of ``image``.
        gap: frame distance (scales the residual floor).
        config: motion settings.
        flows: precomputed ``(flow image->other, flow other->image)``.
    """
    forward, backward = flows if flows is not None else (
        dense_flow(image, other, config.flow_preset), dense_flow(other, image, config.flow_preset))
    error = forward_backward_error(forward, backward)
    reliable = error <= _FB_TOLERANCE + 0.05 * np.linalg.norm(forward, axis=-1)
    usable = reliable & textured
    height, width = textured.shape
    homography = camera_motion(forward, usable)
    grid = _pixel_grid(height, width)
    if homography is None:
        camera = np.zeros_like(forward)
    else:
        camera = cv2.perspectiveTransform(grid.reshape(-1, 1, 2), homography).reshape(height, width, 2) - grid
    residual = forward - camera
    magnitude = np.linalg.norm(residual, axis=-1)
    samples = magnitude[usable]
    median = float(np.median(samples)) if samples.size else 0.0
    scale = 1.4826 * float(np.median(np.abs(samples - median))) if samples.size else 0.0
    floor = config.min_residual * gap
    score = magnitude / max(median + scale, floor / config.threshold)
    score[~usable] = np.nan
    photo, flow_mismatch, shadow = _photometric_score(image, other, homography, forward,
                                                      reliable & (score < 1.0), config)
    # Where the flow failed (fast or occluding objects), a colour change after undoing the camera's motion is
    # the evidence; where the flow is fine and agrees with the camera, colour changes are parallax or light.
    failed = (~reliable | flow_mismatch) & textured
    score[failed] = photo[failed]
    return PairMotion(score=score.astype(np.float32), flow=forward,
                      shadow=shadow)


def _photometric_score(image: np.ndarray, other: np.ndarray, homography: np.ndarray | None, flow: np.ndarray,
                       background: np.ndarray, config: MotionConfig
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour evidence against ``other``.

    Returns:
        ``(score, mismatch, shadow)``: (H, W) float32 colour difference to ``other`` warped by the camera's
        motion, in robust standard deviations of the background's differences (nan where the warp leaves the
        frame); (H, W) bool where ``other`` warped by the flow does not match the colours either (the flow
        failed); (H, W) bool where the pixel is a darker copy of the camera-warped ``other`` with the same
        chroma (a cast shadow passing over the background).
    """
    height, width = image.shape[:2]
    lab = cv2.cvtColor(cv2.GaussianBlur(image, (5, 5), 0), cv2.COLOR_RGB2LAB).astype(np.float32)
    other_lab = cv2.cvtColor(cv2.GaussianBlur(other, (5, 5), 0), cv2.COLOR_RGB2LAB).astype(np.float32)
    if homography is None:
        homography = np.eye(3)
    warped = cv2.warpPerspective(other_lab, homography, (width, height),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=(-1e4, 0, 0))
    difference = np.linalg.norm(lab - warped, axis=-1)
    flow_difference = np.linalg.norm(lab - warp(other_lab, flow), axis=-1)
    samples = difference[background & (difference < 1e3)]
    if samples.size == 0:
        return np.zeros((height, width), np.float32), np.zeros((height, width), bool), np.zeros((height, width), bool)
    median = float(np.median(samples))
    bar = max(median + 1.4826 * float(np.median(np.abs(samples - median))), config.min_color / config.threshold)
    score = difference / bar
    score[difference >= 1e3] = np.nan
    darker = (lab[..., 0] < warped[..., 0] - _SHADOW_MIN_DARKENING) & (lab[..., 0] > 0.25 * warped[..., 0])
    shadow = darker & (np.abs(lab[..., 1:] - warped[..., 1:]).sum(axis=-1) < _SHADOW_MAX_CHROMA)
    shadow &= _same_texture(lab[..., 0], np.where(difference < 1e3, warped[..., 0], 0.0))
    return score.astype(np.float32), flow_difference > config.threshold * bar, shadow


def _same_texture(first: np.ndarray, second: np.ndarray, window: int = 7) -> np.ndarray:
    """(H, W) bool: local normalised cross-correlation above 0.3, or both patches flat (a shadow keeps the
    texture of the surface it falls on; an object brings its own)."""
    def box(x):
        return cv2.boxFilter(x, cv2.CV_32F, (window, window))
    mean_a, mean_b = box(first), box(second)
    var_a = np.maximum(box(first * first) - mean_a ** 2, 0.0)
    var_b = np.maximum(box(second * second) - mean_b ** 2, 0.0)
    covariance = box(first * second) - mean_a * mean_b
    flat = (var_a < _FLAT_VARIANCE) & (var_b < _FLAT_VARIANCE)
    return flat | (covariance > 0.3 * np.sqrt(var_a * var_b) + 1e-6)


def motion_evidence(images: np.ndarray, config: MotionConfig) -> tuple[np.ndarray, list[dict[int, PairMotion]]]:
    """Pooled motion evidence of every frame.

    Args:
        images: (T, H, W, 3) uint8 RGB frames.
        config: motion settings.

    Returns:
        ``(evidence, pairs)``: (T, H, W) float32 median score over the pairs that saw each pixel (nan where none
        did), and per frame a dict from neighbour offset (+-g) to its :class:`PairMotion`.
    """
    num_frames = images.shape[0]
    textured = [texture_mask(image, config.texture_threshold) for image in images]
    pairs: list[dict[int, PairMotion]] = [{} for _ in range(num_frames)]
    for gap in config.gaps:
        for t in range(num_frames - gap):
            forward = dense_flow(images[t], images[t + gap], config.flow_preset)
            backward = dense_flow(images[t + gap], images[t], config.flow_preset)
            pairs[t][gap] = pair_motion(images[t], images[t + gap], textured[t], gap, config, (forward, backward))
            pairs[t + gap][-gap] = pair_motion(images[t + gap], images[t], textured[t + gap], gap, config,
                                               (backward, forward))
    evidence = np.full(images.shape[:3], np.nan, np.float32)
    for t in range(num_frames):
        if pairs[t]:
            stack = np.stack([p.score for p in pairs[t].values()])
            seen = np.isfinite(stack).any(axis=0)
            evidence[t][seen] = np.nanmedian(stack[:, seen], axis=0)
            if config.remove_shadows:
                shadow = np.mean([p.shadow for p in pairs[t].values()], axis=0) >= 0.5
                evidence[t][shadow & seen] = 0.0
    return evidence, pairs


def moving_regions(image: np.ndarray, evidence: np.ndarray, config: MotionConfig) -> np.ndarray:
    """(H, W) bool moving pixels of one frame: hysteresis threshold of the evidence, then GrabCut snapping.

    Args:
        image: (H, W, 3) uint8 RGB.
        evidence: (H, W) pooled motion score, nan where unknown (see :func:`motion_evidence`).
        config: motion settings.
    """
    height, width = evidence.shape
    seen = np.isfinite(evidence)
    evidence = np.where(seen, evidence, 0.0)
    seeds = apply_hysteresis_threshold(evidence, 0.5 * config.threshold, config.threshold)
    seeds = cv2.morphologyEx(seeds.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    seeds = _drop_small(seeds, 0.25 * config.min_area * height * width)
    if not seeds.any() or config.grabcut_iterations == 0:
        return seeds
    band = max(4.0, 0.1 * np.sqrt(seeds.sum()))
    outside = cv2.distanceTransform((~seeds).astype(np.uint8), cv2.DIST_L2, 3)
    trimap = np.full((height, width), cv2.GC_PR_BGD, np.uint8)
    trimap[seeds] = cv2.GC_PR_FGD
    strong = cv2.erode(((evidence > 2 * config.threshold) & seeds).astype(np.uint8), np.ones((3, 3), np.uint8))
    trimap[strong > 0] = cv2.GC_FGD
    trimap[(outside > band) | ((evidence < 0.5) & seen & ~seeds & (outside > 2))] = cv2.GC_BGD
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(image, trimap, None, background, foreground, config.grabcut_iterations, cv2.GC_INIT_WITH_MASK)
    refined = np.isin(trimap, (cv2.GC_FGD, cv2.GC_PR_FGD))
    return _drop_small(refined, 0.25 * config.min_area * height * width)


def _drop_small(mask: np.ndarray, min_pixels: float) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_pixels
    return keep[labels]


def _components(mask: np.ndarray, min_pixels: float) -> list[np.ndarray]:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [labels == i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= min_pixels]


def _iou_matrix(first: list[np.ndarray], second: list[np.ndarray]) -> np.ndarray:
    matrix = np.zeros((len(first), len(second)))
    for i, a in enumerate(first):
        for j, b in enumerate(second):
            union = np.logical_or(a, b).sum()
            matrix[i, j] = np.logical_and(a, b).sum() / union if union else 0.0
    return matrix


def _split_by_tracks(component: np.ndarray, warped: list[np.ndarray]) -> list[np.ndarray] | None:
    """Pieces of one segment that covers several tracks' warped masks (objects touching), each pixel going to
    the nearest of them; None when it covers at most one."""
    covered = [k for k, mask in enumerate(warped) if (mask & component).sum() > 0.2 * max(1, mask.sum())]
    if len(covered) < 2:
        return None
    distances = np.stack([cv2.distanceTransform((~warped[k]).astype(np.uint8), cv2.DIST_L2, 3) for k in covered])
    nearest = np.argmin(distances, axis=0)
    return [component & (nearest == i) for i in range(len(covered))]


def track_segments(masks: np.ndarray, flows_to_previous: list[np.ndarray | None], config: MotionConfig
                   ) -> list[np.ndarray]:
    """Split per-frame moving regions into objects with identities that persist over time.

    Args:
        masks: (T, H, W) bool moving pixels per frame.
        flows_to_previous: per frame, (H, W, 2) flow to the previous frame (None for the first frame).
        config: motion settings.

    Returns:
        One (T, H, W) bool stack per kept object, ordered by first appearance.
    """
    num_frames, height, width = masks.shape
    min_pixels = config.min_area * height * width
    tracks: list[np.ndarray] = []
    for t in range(num_frames):
        segments = _components(masks[t], 0.25 * min_pixels)
        alive = [k for k, track in enumerate(tracks) if t > 0 and track[t - 1].any()]
        warped = [warp(tracks[k][t - 1].astype(np.float32), flows_to_previous[t]) >= 0.5 for k in alive]
        pieces = []
        for segment in segments:
            split = _split_by_tracks(segment, warped)
            pieces.extend(split if split is not None else [segment])
        iou = _iou_matrix(warped, pieces)
        assigned = np.full(len(pieces), -1)
        if iou.size:
            rows, cols = linear_sum_assignment(-iou)
            for row, col in zip(rows, cols):
                if iou[row, col] >= config.match_iou:
                    assigned[col] = alive[row]
        for j, piece in enumerate(pieces):
            if assigned[j] < 0 and warped:
                covered = [(warped[i] & piece).sum() / piece.sum() for i in range(len(warped))]
                if max(covered) > 0.5:
                    assigned[j] = alive[int(np.argmax(covered))]
            if assigned[j] < 0:
                if piece.sum() < min_pixels:
                    continue
                tracks.append(np.zeros((num_frames, height, width), bool))
                assigned[j] = len(tracks) - 1
            tracks[assigned[j]][t] |= piece
    kept = []
    for track in tracks:
        areas = track.reshape(num_frames, -1).sum(axis=1)
        present = areas > 0
        if present.sum() >= max(1, config.min_presence * num_frames) and areas[present].mean() >= min_pixels:
            kept.append(track)
    return kept


def _resize_stack(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.stack([cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0 for m in masks])


def segment_motion(images: np.ndarray, config: MotionConfig | None = None) -> tuple[np.ndarray, str]:
    """Independently moving objects of a clip, tracked over time.

    Args:
        images: (T, H, W, 3) uint8 RGB frames, T >= 2.
        config: motion settings (the work size is ``config.long_side``).

    Returns:
        ``(masks, reason)``: (O, T, H, W) bool masks at the input size, objects ordered by first appearance
        (O may be 0: nothing moves apart from the camera), and a sentence saying what was found.
    """
    config = config or MotionConfig()
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be (T, H, W, 3) uint8, got {images.shape} {images.dtype}")
    num_frames, height, width = images.shape[:3]
    if num_frames < 2:
        return np.zeros((0, num_frames, height, width), bool), "a single frame shows no motion"
    scale = min(1.0, config.long_side / max(height, width))
    work_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.stack([cv2.resize(image, work_size, interpolation=cv2.INTER_AREA) for image in images]) \
        if scale < 1.0 else images
    evidence, pairs = motion_evidence(small, config)
    moving = np.stack([moving_regions(small[t], evidence[t], config) for t in range(num_frames)])
    tracks = track_segments(moving, [None] + [pairs[t][-1].flow for t in range(1, num_frames)], config)
    if not tracks:
        return np.zeros((0, num_frames, height, width), bool), \
            "no independently moving object: only the camera moves (or nothing does)"
    masks = np.stack([_resize_stack(track, (width, height)) for track in tracks])
    return masks, f"{len(tracks)} independently moving object(s) found from flow against the camera's motion"
