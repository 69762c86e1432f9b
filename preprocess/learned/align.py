"""Scale and shift of relative inverse depth (disparity): fitted to sparse depths, or chained across frames.

Relative monocular depth models (Depth Anything v1/v2, MiDaS) predict disparity ``d`` that is the true inverse
depth up to an unknown affine map per image: ``1 / z = scale * d + shift``. Both are fitted in disparity space
by weighted least squares made robust in two steps: a Cauchy-loss fit (``scipy.optimize.least_squares``) started
from the plain least-squares solution, then a plain weighted fit on the inliers, the points whose residual is
within ``threshold`` robust standard deviations (1.4826 x median absolute residual) of that robust fit.
Working in disparity space weighs far points less in depth, as their disparity (and its error) is small.

Over a clip (:func:`align_sequence`) one frame is the anchor: the first with enough sparse depths (then the clip
is metric, in the sparse depths' units), else frame 0, normalised (see :func:`normalise`). Every other frame is
fitted to its own sparse depths when it has enough, otherwise to the already aligned neighbour towards the
anchor, warped by dense optical flow and restricted to the pixels passing the forward-backward check (same
pixels when no images are given). Chaining this way keeps the scale consistent across frames; it can drift
slowly over long clips, which sparse depths on some frames correct.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from preprocess.flow import FlowConfig, consistent_flow, warp

_MAD_TO_SIGMA = 1.4826
_RELATIVE_TOLERANCE = 1e-9


@dataclass
class ScaleShift:
    """An affine map of disparity, ``aligned = scale * disparity + shift``.

    Attributes:
        scale, shift: the fitted map.
        inliers: bool mask, shape of the inputs, of the points kept by the final fit.
        rms: root-mean-square residual of the inliers, in target disparity units.
    """

    scale: float
    shift: float
    inliers: np.ndarray
    rms: float

    def apply(self, disparity: np.ndarray) -> np.ndarray:
        """``scale * disparity + shift``, elementwise, any shape."""
        return self.scale * disparity + self.shift


@dataclass
class AlignedDisparity:
    """A clip's disparity in one scale.

    Attributes:
        disparity: (T, H, W) float64 aligned inverse depth.
        scales, shifts: (T,) the per-frame maps applied to the model's output.
        anchor: the frame the others were chained to.
        metric: True when the anchor was fitted to sparse depths (the clip is in their units).
        sparse_frames: (T,) bool, frames fitted to their own sparse depths.
    """

    disparity: np.ndarray
    scales: np.ndarray
    shifts: np.ndarray
    anchor: int
    metric: bool
    sparse_frames: np.ndarray


def fit_scale_shift(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None,
                    threshold: float = 3.0) -> ScaleShift:
    """Robust weighted fit of ``target ~ scale * source + shift``.

    Args:
        source, target: arrays of one shape (any), e.g. (N,) samples or (H, W) maps.
        weights: same shape, >= 0; zero (or non-finite source/target) excludes a point. Default all 1.
        threshold: inlier bound, in robust standard deviations of the residual.

    Raises:
        ValueError: fewer than two usable points, or a constant source.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    weights = np.ones_like(source) if weights is None else np.asarray(weights, dtype=np.float64)
    if source.shape != target.shape or weights.shape != source.shape:
        raise ValueError(f"fit_scale_shift: shapes differ: source {source.shape}, target {target.shape}, "
                         f"weights {weights.shape}")
    usable = np.isfinite(source) & np.isfinite(target) & np.isfinite(weights) & (weights > 0)
    s, t, w = source[usable], target[usable], weights[usable]
    if len(s) < 2 or np.ptp(s) == 0:
        raise ValueError(f"fit_scale_shift: need two or more usable points with distinct values, got {len(s)}")
    floor = _RELATIVE_TOLERANCE * max(np.abs(t).max(), 1e-12)
    x = _weighted_lstsq(s, t, w)
    sigma = max(_MAD_TO_SIGMA * np.median(np.abs(x[0] * s + x[1] - t)), floor)
    sqrt_w = np.sqrt(w)
    x = least_squares(lambda p: sqrt_w * (p[0] * s + p[1] - t), x, loss="cauchy", f_scale=sigma).x
    residual = np.abs(x[0] * s + x[1] - t)
    keep = residual <= max(threshold * _MAD_TO_SIGMA * np.median(residual), floor)
    if keep.sum() >= 2 and np.ptp(s[keep]) > 0:
        x = _weighted_lstsq(s[keep], t[keep], w[keep])
    inliers = np.zeros(source.shape, dtype=bool)
    inliers[usable] = keep
    rms = float(np.sqrt(np.mean((x[0] * s[keep] + x[1] - t[keep]) ** 2)))
    return ScaleShift(float(x[0]), float(x[1]), inliers, rms)


def align_to_sparse(disparity: np.ndarray, sparse_depth: np.ndarray, weights: np.ndarray | None = None,
                    threshold: float = 3.0) -> ScaleShift:
    """Scale and shift taking relative disparity to inverse sparse depth: ``1 / depth ~ scale * d + shift``.

    Args:
        disparity: model disparity at the sparse points, any shape (e.g. (N,) samples or an (H, W) map).
        sparse_depth: same shape, metric (or SfM) depth; entries <= 0 or non-finite are unknown.
        weights: same shape, >= 0 (e.g. triangulation confidence); default all 1.
        threshold: inlier bound, in robust standard deviations.

    Raises:
        ValueError: fewer than two known depths.
    """
    sparse_depth = np.asarray(sparse_depth, dtype=np.float64)
    known = np.isfinite(sparse_depth) & (sparse_depth > 0)
    inverse = np.where(known, 1.0 / np.where(known, sparse_depth, 1.0), np.nan)
    return fit_scale_shift(disparity, inverse, weights, threshold)


def normalise(disparity: np.ndarray) -> ScaleShift:
    """The anchor's map when no depth is known: median disparity 1 (depth 1 at the median).

    When the model's disparity is non-negative (its zero plausibly at infinity, as for Depth Anything) only the
    scale is set; otherwise the 1st percentile is also moved to zero disparity.
    """
    d = np.asarray(disparity, dtype=np.float64)
    low, median = np.percentile(d, 1), np.median(d)
    if low >= 0 and median > 0:
        scale, shift = 1.0 / median, 0.0
    elif median > low:
        scale = 1.0 / (median - low)
        shift = -low * scale
    else:
        scale, shift = 0.0, 1.0
    return ScaleShift(scale, shift, np.ones(d.shape, dtype=bool), 0.0)


def align_sequence(disparity: np.ndarray, sparse_depth: np.ndarray | None = None,
                   images: np.ndarray | None = None, min_points: int = 20, threshold: float = 3.0,
                   flow: FlowConfig | None = None, normalise_anchor: bool = True) -> AlignedDisparity:
    """One scale and shift per frame so that the whole clip's disparity shares one scale.

    Args:
        disparity: (T, H, W) model disparity.
        sparse_depth: optional (T, H, W) known depths, 0 where unknown (e.g. triangulated points splatted into
            each frame).
        images: optional (T, H, W, 3) uint8 frames, for the flow between neighbours; without them neighbours are
            compared pixel by pixel (a static camera and scene).
        min_points: fewest sparse depths (or consistent flow pixels) for a frame's own fit.
        threshold: inlier bound of the robust fits.
        flow: dense flow settings.
        normalise_anchor: normalise an anchor without sparse depths (:func:`normalise`); False keeps it as it
            is (a metric model's output).
    """
    disparity = np.asarray(disparity, dtype=np.float64)
    if disparity.ndim != 3:
        raise ValueError(f"align_sequence: expected disparity (T, H, W), got {disparity.shape}")
    num_frames = disparity.shape[0]
    if sparse_depth is not None and sparse_depth.shape != disparity.shape:
        raise ValueError(f"align_sequence: sparse depth {sparse_depth.shape} does not match disparity "
                         f"{disparity.shape}")
    if images is not None and images.shape[:3] != disparity.shape:
        raise ValueError(f"align_sequence: images {images.shape} do not match disparity {disparity.shape}")
    counts = np.zeros(num_frames, dtype=int) if sparse_depth is None else (sparse_depth > 0).sum(axis=(1, 2))
    has_sparse = counts >= min_points
    anchor = int(np.argmax(has_sparse)) if has_sparse.any() else 0

    maps: list[ScaleShift | None] = [None] * num_frames
    fitted_sparse = np.zeros(num_frames, dtype=bool)
    aligned = np.empty_like(disparity)
    order = [(anchor, None)] + [(t, t - 1) for t in range(anchor + 1, num_frames)] + \
            [(t, t + 1) for t in range(anchor - 1, -1, -1)]
    for t, reference in order:
        fit = None
        if has_sparse[t]:
            fit = _try(lambda: align_to_sparse(disparity[t], sparse_depth[t], threshold=threshold))
            fitted_sparse[t] = fit is not None
        if fit is None and reference is not None:
            target, valid = _reference_at(t, reference, aligned, images, flow)
            if valid.sum() >= min_points:
                fit = _try(lambda: fit_scale_shift(disparity[t], target, valid.astype(np.float64), threshold))
            fit = fit or maps[reference]
        if fit is None:
            fit = normalise(disparity[t]) if normalise_anchor else \
                ScaleShift(1.0, 0.0, np.ones(disparity[t].shape, dtype=bool), 0.0)
        maps[t] = fit
        aligned[t] = fit.apply(disparity[t])
    return AlignedDisparity(aligned, np.array([m.scale for m in maps]), np.array([m.shift for m in maps]),
                            anchor, bool(fitted_sparse[anchor]), fitted_sparse)


def disparity_to_depth(disparity: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Depth ``1 / disparity`` with a confidence of 0 where the disparity is at or below ``floor``.

    Args:
        disparity: (...) aligned inverse depth.
        floor: smallest trusted disparity (> 0); beyond it (farther, sky, or negative) the depth is set to
            ``1 / floor`` and marked unknown.

    Returns:
        ``(depth, confidence)``, float32 arrays of the input's shape; confidence is 1 or 0.
    """
    if not floor > 0:
        raise ValueError(f"disparity_to_depth: floor must be > 0, got {floor}")
    disparity = np.asarray(disparity, dtype=np.float64)
    trusted = np.isfinite(disparity) & (disparity > floor)
    depth = np.where(trusted, 1.0 / np.where(trusted, disparity, 1.0), 1.0 / floor)
    return depth.astype(np.float32), trusted.astype(np.float32)


def _reference_at(t: int, reference: int, aligned: np.ndarray, images: np.ndarray | None,
                  flow: FlowConfig | None) -> tuple[np.ndarray, np.ndarray]:
    """The aligned disparity of ``reference`` seen at frame ``t``'s pixels, and where it is reliable."""
    if images is None:
        return aligned[reference], np.isfinite(aligned[reference])
    forward, valid = consistent_flow(images[t], images[reference], flow)
    return warp(aligned[reference].astype(np.float32), forward).astype(np.float64), valid


def _weighted_lstsq(s: np.ndarray, t: np.ndarray, w: np.ndarray) -> np.ndarray:
    sqrt_w = np.sqrt(w)
    design = np.stack([s * sqrt_w, sqrt_w], axis=1)
    return np.linalg.lstsq(design, t * sqrt_w, rcond=None)[0]


def _try(fit):
    try:
        return fit()
    except ValueError:
        return None
