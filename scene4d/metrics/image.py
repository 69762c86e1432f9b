"""Image fidelity: PSNR and SSIM through torchmetrics, optionally restricted to a mask.

Convention for every image metric in :mod:`scene4d.metrics`: images are float tensors of shape ``(H, W, 3)`` or
``(B, H, W, 3)`` with values in ``[0, 1]`` (channels last, like the rendered and decoded frames); masks are bool
``(H, W)`` or ``(B, H, W)``. A single image gives a 0-dim tensor, a batch gives one value per image ``(B,)``.
"""

from __future__ import annotations

import torch

RANGE_TOLERANCE = 1e-4


def check_images(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Validate a pair of images and bring them to ``(B, H, W, 3)``.

    Returns:
        ``(pred, target, batched)``: both (B, H, W, 3); ``batched`` is False for (H, W, 3) inputs.
    """
    for name, image in (("pred", pred), ("target", target)):
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(image).__name__}")
        if image.ndim not in (3, 4) or image.shape[-1] != 3:
            raise ValueError(f"{name}: expected (H, W, 3) or (B, H, W, 3), got {tuple(image.shape)}")
        if not image.is_floating_point():
            raise ValueError(f"{name}: expected floating point values in [0, 1], got {image.dtype}")
        if image.numel() and (image.min() < -RANGE_TOLERANCE or image.max() > 1 + RANGE_TOLERANCE):
            raise ValueError(f"{name}: values must lie in [0, 1], got [{image.min():.4g}, {image.max():.4g}]")
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    batched = pred.ndim == 4
    if not batched:
        pred, target = pred[None], target[None]
    return pred, target, batched


def _check_mask(mask: torch.Tensor | None, shape: torch.Size) -> torch.Tensor:
    """(B, H, W) bool mask for images of ``shape`` (B, H, W, 3); all True when ``mask`` is None."""
    if mask is None:
        return torch.ones(shape[:3], dtype=torch.bool)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask: expected a bool torch.Tensor, got {getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.ndim == 2:
        mask = mask.expand(shape[0], -1, -1)
    if mask.shape != shape[:3]:
        raise ValueError(f"mask: expected (H, W) or (B, H, W) = {tuple(shape[:3])}, got {tuple(mask.shape)}")
    return mask


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB for a data range of 1.

    With a mask, the MSE is taken over the masked pixels only (all three channels of each), so a mask covering
    the whole image gives the plain PSNR.

    Args:
        pred: (H, W, 3) or (B, H, W, 3) in [0, 1].
        target: same shape as ``pred``.
        mask: optional (H, W) or (B, H, W) bool; an image whose mask is empty scores NaN.

    Returns:
        0-dim tensor, or (B,) for batched input; ``inf`` for identical images.
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio  # slow import, only when measuring

    pred, target, batched = check_images(pred, target)
    mask = _check_mask(mask, pred.shape).to(pred.device)
    scores = torch.stack([
        peak_signal_noise_ratio(p[m], t[m], data_range=1.0) if m.any() else pred.new_tensor(float("nan"))
        for p, t, m in zip(pred, target, mask)
    ])
    return scores if batched else scores[0]


def ssim_map(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM (Gaussian window 11, sigma 1.5, K1=0.01, K2=0.03, reflect padding), averaged over channels.

    Args:
        pred: (H, W, 3) or (B, H, W, 3) in [0, 1].
        target: same shape as ``pred``.

    Returns:
        (H, W) or (B, H, W); its mean over all pixels is torchmetrics' SSIM of the image.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure  # slow import

    pred, target, batched = check_images(pred, target)
    _, full = structural_similarity_index_measure(
        pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2), data_range=1.0, reduction="none",
        return_full_image=True)
    full = full.mean(dim=1)
    return full if batched else full[0]


def ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Structural similarity, optionally inside a mask.

    SSIM inside a mask is the mean of :func:`ssim_map` over the masked pixels. Each pixel's SSIM still looks at
    its 11x11 neighbourhood, so pixels next to the mask boundary see some content outside it; compose a
    background into both images first if that content must not count.

    Args:
        pred: (H, W, 3) or (B, H, W, 3) in [0, 1].
        target: same shape as ``pred``.
        mask: optional (H, W) or (B, H, W) bool; an image whose mask is empty scores NaN.

    Returns:
        0-dim tensor, or (B,) for batched input; 1 for identical images.
    """
    maps = ssim_map(pred, target)
    maps = maps if maps.ndim == 3 else maps[None]
    mask = _check_mask(mask, (*maps.shape, 3)).to(maps.device)
    weights = mask.to(maps.dtype)
    area = weights.sum(dim=(1, 2))
    scores = torch.where(area > 0, (maps * weights).sum(dim=(1, 2)) / area.clamp(min=1), float("nan"))
    return scores if pred.ndim == 4 else scores[0]
