"""Spread object masks from a few annotated frames to every frame, without learned weights.

Each step warps the previous frame's masks along dense optical flow, then re-segments a band around the warped
boundary with GrabCut: pixels deep inside (outside) the warped mask, where the flow passes its forward-backward
check, are fixed foreground (background); the band and the unreliable pixels are decided by the graph cut.
Drift is held back in three ways: GrabCut's colour models learn from the annotated frame as well as the current
one; pixels inside the warped mask that move with the camera (a homography fitted to the background's flow)
while the object moves otherwise are left to the graph cut; and an object the flow loses (small and fast) is
moved by masked template matching when that explains its colours better. Every annotated frame restarts the
propagation; a frame takes its labels from the nearest annotated frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from preprocess.flow import dense_flow, forward_backward_error, warp
from preprocess.masks.config import PropagationConfig

_FB_TOLERANCE = 1.0
_PHOTO_TOLERANCE = 20.0
_MIN_RELATIVE_MOTION = 2.0


def _bbox(mask: np.ndarray, margin: float) -> tuple[slice, slice] | None:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    pad_y, pad_x = int(margin * (y1 - y0)) + 8, int(margin * (x1 - x0)) + 8
    height, width = mask.shape
    return slice(max(0, y0 - pad_y), min(height, y1 + pad_y)), slice(max(0, x0 - pad_x), min(width, x1 + pad_x))


def _distance_inside(mask: np.ndarray) -> np.ndarray:
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)


def _trimap(prior: np.ndarray, reliable: np.ndarray, others: np.ndarray, band: float) -> np.ndarray:
    """GrabCut labels from a warped soft mask: sure inside/outside beyond ``band`` pixels of its edge."""
    inside = prior >= 0.5
    trimap = np.where(inside, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    trimap[(_distance_inside(inside) > band) & reliable] = cv2.GC_FGD
    trimap[((_distance_inside(~inside) > band) & reliable) | others] = cv2.GC_BGD
    return trimap


def _grabcut(image: np.ndarray, trimap: np.ndarray, iterations: int) -> np.ndarray:
    """(H, W) bool foreground of GrabCut started from ``trimap`` (returned as is when nothing is undecided)."""
    undecided = np.isin(trimap, (cv2.GC_PR_FGD, cv2.GC_PR_BGD))
    has_fg = np.isin(trimap, (cv2.GC_FGD, cv2.GC_PR_FGD)).any()
    has_bg = np.isin(trimap, (cv2.GC_BGD, cv2.GC_PR_BGD)).any()
    if not (has_fg and has_bg and undecided.any()):
        return np.isin(trimap, (cv2.GC_FGD, cv2.GC_PR_FGD))
    labels = trimap.copy()
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(image, labels, None, background, foreground, iterations, cv2.GC_INIT_WITH_MASK)
    return np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD))


def _photo_consistent(image: np.ndarray, previous: np.ndarray, flow_to_previous: np.ndarray) -> np.ndarray:
    """Where the previous frame, warped along the flow, has the colour of ``image`` (Lab distance, blurred)."""
    return np.linalg.norm(_lab(image) - warp(_lab(previous), flow_to_previous), axis=-1) < _PHOTO_TOLERANCE


def _background_residual(flow: np.ndarray, background: np.ndarray) -> np.ndarray | None:
    """(H, W) distance between the flow and the camera's motion, a homography fitted to background pixels."""
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[2:height:4, 2:width:4]
    keep = background[ys, xs]
    if keep.sum() < 50:
        return None
    source = np.stack([xs[keep], ys[keep]], axis=-1).astype(np.float32)
    target = source + flow[ys[keep], xs[keep]]
    homography, _ = cv2.findHomography(source, target, cv2.RANSAC, 1.0)
    if homography is None:
        return None
    grid = np.stack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)), -1)
    predicted = cv2.perspectiveTransform(grid.reshape(-1, 1, 2), homography).reshape(height, width, 2)
    return np.linalg.norm(grid + flow - predicted, axis=-1)


def _lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.GaussianBlur(image, (5, 5), 0), cv2.COLOR_RGB2LAB).astype(np.float32)


def _shift_if_better(lab: np.ndarray, previous_lab: np.ndarray, previous_mask: np.ndarray, flow_mask: np.ndarray,
                     flow_error: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The previous mask moved by the translation that best matches the object's appearance (masked template
    matching), when that explains the object's colours better than the flow does (fast objects that the
    coarse-to-fine flow loses). Returns ``(prior, reliable)`` or None to keep the flow's result.
    """
    window = _bbox(previous_mask, 0.0)
    if window is None or not flow_mask.any():
        return None
    (ys, xs), height, width = window, *previous_mask.shape
    reach = max(ys.stop - ys.start, xs.stop - xs.start, 24)
    search = (slice(max(0, ys.start - reach), min(height, ys.stop + reach)),
              slice(max(0, xs.start - reach), min(width, xs.stop + reach)))
    template, weights = previous_lab[window], previous_mask[window].astype(np.float32)
    scores = cv2.matchTemplate(lab[search], template, cv2.TM_SQDIFF, mask=np.repeat(weights[..., None], 3, -1))
    _, _, best, _ = cv2.minMaxLoc(scores)
    dx, dy = best[0] + search[1].start - xs.start, best[1] + search[0].start - ys.start
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    prior = cv2.warpAffine(previous_mask.astype(np.float32), shift, (width, height))
    moved = cv2.warpAffine(previous_lab, shift, (width, height))
    shift_error = np.linalg.norm(lab - moved, axis=-1)
    inside = prior >= 0.5
    if not inside.any() or np.median(shift_error[inside]) >= 0.7 * np.median(flow_error[flow_mask]):
        return None
    return prior, shift_error < _PHOTO_TOLERANCE


def _step(image: np.ndarray, previous_image: np.ndarray, previous: np.ndarray, flow_to_previous: np.ndarray,
          reliable: np.ndarray, object_ids: list[int], anchor: tuple[np.ndarray, np.ndarray], config: PropagationConfig) -> np.ndarray:
    """Labels of ``image`` from the previous frame's labels warped along ``flow_to_previous``, then refined."""
    anchor_image, anchor_labels = anchor
    priors = np.stack([warp((previous == i).astype(np.float32), flow_to_previous) for i in object_ids])
    background_motion = _background_residual(flow_to_previous, reliable & (priors.max(axis=0) < 0.01))
    reliable = np.repeat(reliable[None], len(object_ids), axis=0)
    lab = _lab(image)
    previous_lab = _lab(previous_image)
    flow_error = np.linalg.norm(lab - warp(previous_lab, flow_to_previous), axis=-1)
    for k, object_id in enumerate(object_ids):
        shifted = _shift_if_better(lab, previous_lab, previous == object_id, priors[k] >= 0.5, flow_error)
        if shifted is not None:
            priors[k], reliable[k] = shifted
    labels = np.zeros(previous.shape, np.int32)
    scores = np.zeros(previous.shape, np.float32)
    for k, object_id in enumerate(object_ids):
        prior = priors[k]
        window = _bbox(prior >= 0.5, config.margin)
        if window is None:
            continue
        area = float((prior >= 0.5).sum())
        band = max(config.min_band, config.band * np.sqrt(area))
        others = np.delete(priors, k, axis=0).max(axis=0, initial=0.0) >= 0.5
        others &= _distance_inside(others) > band
        trimap = _trimap(prior[window], reliable[k][window], others[window], band)
        if background_motion is not None:
            interior = (prior >= 0.5) & reliable[k]
            relative = np.median(background_motion[interior]) if interior.any() else 0.0
            if relative > _MIN_RELATIVE_MOTION:
                static = (background_motion[window] < 0.25 * relative) & (prior[window] >= 0.5)
                trimap[static] = cv2.GC_PR_BGD
        if config.grabcut_iterations == 0:
            mask = prior[window] >= 0.5
        else:
            mask = _refine(image[window], trimap, anchor_image, anchor_labels == object_id, config)
        region = labels[window]
        score = np.where(mask, prior[window] + 1.0, 0.0)
        better = score > scores[window]
        region[better] = object_id
        scores[window] = np.maximum(scores[window], score)
    return labels


def _refine(crop: np.ndarray, trimap: np.ndarray, anchor_image: np.ndarray, anchor_mask: np.ndarray,
            config: PropagationConfig) -> np.ndarray:
    """GrabCut on ``crop`` whose colour models also learn from the annotated frame around the object.

    The anchor frame's crop (scaled to the same width) is stacked under the current one with fixed labels: the
    models then see both frames' colours while only the current crop's undecided pixels can change.
    """
    if not config.anchor_colors:
        return _grabcut(np.ascontiguousarray(crop), trimap, config.grabcut_iterations)
    window = _bbox(anchor_mask, config.margin)
    anchor_crop = anchor_image[window]
    anchor_trimap = np.where(anchor_mask[window], cv2.GC_FGD, cv2.GC_BGD).astype(np.uint8)
    if anchor_crop.shape[1] != crop.shape[1]:
        size = (crop.shape[1], max(1, round(anchor_crop.shape[0] * crop.shape[1] / anchor_crop.shape[1])))
        anchor_crop = cv2.resize(anchor_crop, size, interpolation=cv2.INTER_AREA)
        anchor_trimap = cv2.resize(anchor_trimap, size, interpolation=cv2.INTER_NEAREST)
    stacked = np.ascontiguousarray(np.concatenate([crop, anchor_crop]))
    mask = _grabcut(stacked, np.concatenate([trimap, anchor_trimap]), config.grabcut_iterations)
    return mask[: crop.shape[0]]


def propagate_labels(images: np.ndarray, anchors: np.ndarray, anchor_frames: np.ndarray,
                     object_ids: list[int], config: PropagationConfig | None = None) -> np.ndarray:
    """Label maps for every frame from label maps on a few annotated frames.

    Args:
        images: (T, H, W, 3) uint8 RGB frames.
        anchors: (K, H, W) int label maps of the annotated frames (0 background, else an object id).
        anchor_frames: (K,) distinct indices of the annotated frames in ``images``, increasing.
        object_ids: the ids to propagate (ids in ``anchors`` that are not listed are treated as background).
        config: propagation settings.

    Returns:
        (T, H, W) int32 label maps; annotated frames keep their given labels. A frame between two annotated
        frames takes its labels from the nearer one (the earlier on a tie).
    """
    config = config or PropagationConfig()
    num_frames = images.shape[0]
    if anchors.shape[0] != len(anchor_frames) or anchors.shape[1:] != images.shape[1:3]:
        raise ValueError(f"anchors {anchors.shape} do not match {len(anchor_frames)} frames of {images.shape}")
    anchor_frames = np.asarray(anchor_frames)
    if np.any(np.diff(anchor_frames) <= 0) or anchor_frames.min() < 0 or anchor_frames.max() >= num_frames:
        raise ValueError(f"anchor_frames must increase within [0, {num_frames}), got {anchor_frames}")
    source = np.full(num_frames, -1)
    for t in range(num_frames):
        distance = np.abs(anchor_frames - t)
        source[t] = int(np.argmin(distance))
    result = np.zeros(images.shape[:3], np.int32)
    keep = np.isin(anchors, object_ids)
    for k, start in enumerate(anchor_frames):
        result[start] = np.where(keep[k], anchors[k], 0)
        anchor = (images[start], result[start])
        for direction in (1, -1):
            t = start + direction
            while 0 <= t < num_frames and source[t] == k:
                previous = t - direction
                to_previous = dense_flow(images[t], images[previous], config.flow_preset)
                to_current = dense_flow(images[previous], images[t], config.flow_preset)
                error = forward_backward_error(to_previous, to_current)
                reliable = error <= _FB_TOLERANCE + 0.05 * np.linalg.norm(to_previous, axis=-1)
                reliable &= _photo_consistent(images[t], images[previous], to_previous)
                result[t] = _step(images[t], images[previous], result[previous], to_previous, reliable,
                                  object_ids, anchor, config)
                t += direction
    return result
