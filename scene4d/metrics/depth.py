"""Depth accuracy: AbsRel and delta accuracy after least-squares scale (or scale-and-shift) alignment.

Depths are z along the optical axis, as ``(H, W)`` or ``(T, H, W)`` float tensors. A pixel counts when the mask
(if any) is set and the target is finite and positive. Alignment fits one scale (and shift) over every counted pixel
of the input, so a ``(T, H, W)`` clip is aligned as a whole (the consistent-scale setting of video depth); call
per frame for per-frame alignment. Alignment is in depth space, not disparity.
"""

from __future__ import annotations

import torch

ALIGN_MODES = ("none", "scale", "scale_shift")


def _valid_pixels(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(...) bool of the pixels that count, after checking the inputs."""
    for name, depth in (("pred", pred), ("target", target)):
        if not isinstance(depth, torch.Tensor) or not depth.is_floating_point():
            received = getattr(depth, "dtype", type(depth).__name__)
            raise TypeError(f"{name}: expected a floating point torch.Tensor, got {received}")
        if depth.ndim not in (2, 3):
            raise ValueError(f"{name}: expected (H, W) or (T, H, W), got {tuple(depth.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    valid = torch.isfinite(target) & (target > 0) & torch.isfinite(pred)
    if mask is not None:
        if mask.dtype != torch.bool or mask.shape != target.shape:
            raise ValueError(f"mask: expected bool {tuple(target.shape)}, got {mask.dtype} {tuple(mask.shape)}")
        valid &= mask
    if not valid.any():
        raise ValueError("no valid pixels: the mask is empty or the target has no finite positive depth")
    return valid


def align_depth(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                mode: str = "scale") -> torch.Tensor:
    """Least-squares alignment of ``pred`` to ``target`` over the counted pixels.

    ``scale`` minimises ``sum (s * pred - target)^2``; ``scale_shift`` minimises ``sum (s * pred + b - target)^2``.

    Args:
        pred: (H, W) or (T, H, W) predicted depth (any scale).
        target: same shape, ground truth.
        mask: optional bool, same shape.
        mode: one of ``none``, ``scale``, ``scale_shift``.

    Returns:
        ``pred`` aligned, same shape (every pixel transformed, counted or not).
    """
    if mode not in ALIGN_MODES:
        raise ValueError(f"mode: expected one of {ALIGN_MODES}, got {mode!r}")
    valid = _valid_pixels(pred, target, mask)
    if mode == "none":
        return pred
    p, g = pred[valid].double(), target[valid].double()
    if mode == "scale":
        scale = (p * g).sum() / (p * p).sum().clamp(min=torch.finfo(torch.float64).tiny)
        return (pred.double() * scale).to(pred.dtype)
    design = torch.stack([p, torch.ones_like(p)], dim=1)
    solution = torch.linalg.lstsq(design, g[:, None]).solution[:, 0]
    return (pred.double() * solution[0] + solution[1]).to(pred.dtype)


def abs_rel(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
            align: str = "scale") -> torch.Tensor:
    """Mean absolute relative error ``|aligned - target| / target`` over the counted pixels.

    Args:
        pred: (H, W) or (T, H, W).
        target: same shape.
        mask: optional bool, same shape.
        align: alignment mode of :func:`align_depth`.

    Returns:
        0-dim tensor; 0 for a perfect prediction.
    """
    aligned = align_depth(pred, target, mask, align)
    valid = _valid_pixels(pred, target, mask)
    return ((aligned[valid] - target[valid]).abs() / target[valid]).mean()


def delta_accuracy(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                   align: str = "scale", threshold: float = 1.25) -> torch.Tensor:
    """Fraction of counted pixels with ``max(aligned / target, target / aligned) < threshold`` (delta_1 at 1.25).

    Non-positive aligned depths count as failures.

    Returns:
        0-dim tensor in [0, 1].
    """
    aligned = align_depth(pred, target, mask, align)
    valid = _valid_pixels(pred, target, mask)
    p, g = aligned[valid], target[valid]
    ratio = torch.maximum(p / g, g / p.clamp(min=torch.finfo(p.dtype).tiny))
    return ((p > 0) & (ratio < threshold)).to(pred.dtype).mean()
