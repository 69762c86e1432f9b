"""Small named loss functions for fitting; the total is a weighted sum with weights in the fit config.

Images are (B, H, W, C) floats; masks and weights (B, H, W, 1) in [0, 1]. A weighted mean divides by the
sum of weights (times channels), so a loss does not change with how much of the image a mask covers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from kornia.metrics import ssim as ssim_map


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean()
    weights = weights.expand_as(values)
    return (values * weights).sum() / weights.sum().clamp(min=1e-8)


def rgb_l1(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute colour error, over the pixels ``weights`` selects.

    Args:
        pred, target: (B, H, W, 3) colours.
        weights: (B, H, W, 1) per-pixel weights (e.g. the object mask minus occluded pixels), or None.
    """
    return _weighted_mean((pred - target).abs(), weights)


def dssim(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
          window: int = 11) -> torch.Tensor:
    """Structural dissimilarity ``(1 - SSIM) / 2`` averaged over the weighted pixels (kornia's SSIM map).

    Args:
        pred, target: (B, H, W, C) in [0, 1].
        weights: (B, H, W, 1) or None.
        window: SSIM Gaussian window size (odd).
    """
    ssim = ssim_map(pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2), window, max_val=1.0)
    return _weighted_mean((1.0 - ssim.permute(0, 2, 3, 1)) / 2.0, weights)


def mask_loss(alpha: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Squared error between rendered opacity and the object's mask, ignoring pixels where ``valid`` is 0.

    Args:
        alpha: (B, H, W, 1) rendered accumulated opacity.
        mask: (B, H, W, 1) target mask in [0, 1].
        valid: (B, H, W, 1), 0 where the object may be hidden by another one (its alpha is unknown).
    """
    return _weighted_mean((alpha - mask).square(), valid)


def align_scale_shift(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image least-squares ``s, b`` minimising ``sum w (s * pred + b - target)^2`` (closed form, differentiable).

    Args:
        pred, target, weights: (B, H, W, 1).

    Returns:
        ``(scale, shift)``, each (B,).
    """
    w = weights.flatten(1)
    p, t = pred.flatten(1), target.flatten(1)
    sw = w.sum(1).clamp(min=1e-8)
    mean_p, mean_t = (w * p).sum(1) / sw, (w * t).sum(1) / sw
    var_p = (w * (p - mean_p[:, None]).square()).sum(1)
    cov = (w * (p - mean_p[:, None]) * (t - mean_t[:, None])).sum(1)
    scale = cov / var_p.clamp(min=1e-12)
    return scale, mean_t - scale * mean_p


def depth_scale_shift_invariant(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean absolute depth error after the best per-image scale and shift (as MiDaS trains with).

    Args:
        pred: (B, H, W, 1) rendered depth; target: (B, H, W, 1) estimated depth; weights: (B, H, W, 1)
            (mask times depth confidence).
    """
    scale, shift = align_scale_shift(pred, target, weights)
    aligned = scale[:, None, None, None] * pred + shift[:, None, None, None]
    return _weighted_mean((aligned - target).abs(), weights)


def track_reprojection(projected: torch.Tensor, observed: torch.Tensor, visibility: torch.Tensor,
                       delta: float = 2.0) -> torch.Tensor:
    """Huber error (pixels) between the projected trajectories of tracked points and the 2D tracks.

    Args:
        projected: (B, N, 2) projections of the points the tracks were attached to.
        observed: (B, N, 2) track positions; visibility: (B, N) bool or {0, 1}.
        delta: Huber threshold in pixels.
    """
    error = torch.linalg.norm(projected - observed, dim=-1)
    huber = torch.where(error < delta, 0.5 * error.square() / delta, error - 0.5 * delta)
    return _weighted_mean(huber, visibility.to(huber.dtype))


def arap(rest: torch.Tensor, deformed: torch.Tensor, rotations: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """As-rigid-as-possible energy of a deformed point graph (control points or Gaussians).

    ``mean |R_i (x_j - x_i) - (y_j - y_i)|^2`` over each point i and its neighbours j, where ``x`` are rest
    positions, ``y`` deformed ones and ``R_i`` the local rotation at i.

    Args:
        rest: (M, 3); deformed: (B, M, 3); rotations: (B, M, 3, 3); neighbours: (M, k) long indices.
    """
    rest_edges = rest[neighbours] - rest[:, None, :]  # (M, k, 3)
    deformed_edges = deformed[:, neighbours] - deformed[:, :, None, :]  # (B, M, k, 3)
    predicted = torch.einsum("bmij,mkj->bmki", rotations, rest_edges)
    return (predicted - deformed_edges).square().sum(-1).mean()


def knn_indices(points: torch.Tensor, k: int) -> torch.Tensor:
    """(M, k) indices of each point's k nearest other points (for :func:`arap`)."""
    dist = torch.cdist(points.detach(), points.detach())
    dist.fill_diagonal_(float("inf"))
    return torch.topk(dist, min(k, points.shape[0] - 1), dim=1, largest=False).indices


def scale_anisotropy(scales: torch.Tensor, max_ratio: float = 10.0) -> torch.Tensor:
    """Penalty on needle-like Gaussians: ``mean(relu(max / min - max_ratio))``.

    Args:
        scales: (N, 3) activated scales.
    """
    ratio = scales.max(dim=-1).values / scales.min(dim=-1).values.clamp(min=1e-12)
    return torch.relu(ratio - max_ratio).mean()


def temporal_smoothness(values: torch.Tensor) -> torch.Tensor:
    """Mean squared second difference along time (acceleration) of sampled trajectories.

    Args:
        values: (B, ...) values at B equally spaced times, B >= 3.
    """
    if values.shape[0] < 3:
        return values.new_zeros(())
    return (values[2:] - 2.0 * values[1:-1] + values[:-2]).square().mean()


def plane_total_variation(space_planes: Sequence[torch.Tensor], time_planes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Squared total variation of feature planes along their spatial axes (K-Planes' spatial smoothness).

    The mean squared difference between neighbouring samples, taken along each spatial axis of each plane, then
    averaged over those (plane, axis) pairs.

    Args:
        space_planes: (C, H, W) planes over two spatial axes (both axes count).
        time_planes: (C, T, W) planes over time (rows) and a spatial axis (columns; only it counts).
    """
    terms = [torch.diff(p, dim=dim).square().mean() for p in space_planes for dim in (-2, -1)]
    terms += [torch.diff(p, dim=-1).square().mean() for p in time_planes]
    return torch.stack(terms).mean()


def plane_time_smoothness(time_planes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over planes of :func:`temporal_smoothness` along the time axis (rows) of (C, T, W) time planes."""
    return torch.stack([temporal_smoothness(p.movedim(-2, 0)) for p in time_planes]).mean()
