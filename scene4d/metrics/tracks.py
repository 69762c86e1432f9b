"""Point-track accuracy in 2D (pixels) or 3D (world units): end-point error and TAP-Vid's delta_avg.

Tracks are ``(N, T, D)`` float tensors (``D`` = 2 for pixel positions, 3 for world points), scored where the
ground truth is visible, given as ``(N, T)`` bool.
"""

from __future__ import annotations

import torch

TAPVID_THRESHOLDS = (1.0, 2.0, 4.0, 8.0, 16.0)


def _errors(pred: torch.Tensor, target: torch.Tensor, visibility: torch.Tensor | None) -> torch.Tensor:
    """Euclidean errors of the scored entries, (M,)."""
    for name, tracks in (("pred", pred), ("target", target)):
        if not isinstance(tracks, torch.Tensor) or tracks.ndim != 3 or tracks.shape[2] not in (2, 3):
            raise ValueError(f"{name}: expected (N, T, 2) or (N, T, 3), got {tuple(getattr(tracks, 'shape', ()))}")
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if visibility is None:
        visibility = torch.ones(target.shape[:2], dtype=torch.bool, device=target.device)
    if visibility.dtype != torch.bool or visibility.shape != target.shape[:2]:
        raise ValueError(f"visibility: expected bool {tuple(target.shape[:2])}, got "
                         f"{visibility.dtype} {tuple(visibility.shape)}")
    if not visibility.any():
        raise ValueError("visibility: no visible entry to score")
    return (pred[visibility] - target[visibility]).norm(dim=-1)


def track_epe(pred: torch.Tensor, target: torch.Tensor, visibility: torch.Tensor | None = None) -> torch.Tensor:
    """Mean end-point error over the visible entries.

    Args:
        pred: (N, T, D) predicted positions, D in {2, 3}.
        target: (N, T, D) true positions.
        visibility: optional (N, T) bool, where the true point is visible (all when None).

    Returns:
        0-dim tensor in the tracks' units.
    """
    return _errors(pred, target, visibility).mean()


def track_delta_avg(pred: torch.Tensor, target: torch.Tensor, visibility: torch.Tensor | None = None,
                    thresholds: tuple[float, ...] = TAPVID_THRESHOLDS) -> torch.Tensor:
    """Fraction of visible entries within each threshold of the truth, averaged over thresholds (TAP-Vid).

    TAP-Vid's thresholds are pixels at 256x256; rescale the tracks (or the thresholds) for other sizes.

    Args:
        pred: (N, T, D).
        target: (N, T, D).
        visibility: optional (N, T) bool.
        thresholds: distances in the tracks' units.

    Returns:
        0-dim tensor in [0, 1].
    """
    errors = _errors(pred, target, visibility)
    return torch.stack([(errors < threshold).to(errors.dtype).mean() for threshold in thresholds]).mean()
