"""Brute-force rasterizer: every Gaussian against every pixel, no tiles. The ground truth for tests.

Memory is ``C * H * W * N``: use it on small images only.
"""

from __future__ import annotations

import torch

from scene4d.conventions import pixel_centers
from scene4d.render.projection import ProjectedGaussians, composite_weights, gaussian_alpha


def rasterize_reference(
    projected: ProjectedGaussians,
    colors: torch.Tensor,  # (C, N, D)
    width: int,
    height: int,
    backgrounds: torch.Tensor | None = None,  # (C, D)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite projected Gaussians at every pixel centre, front to back.

    Args:
        projected: output of :func:`~scene4d.render.projection.project_gaussians`, leading dims (C, N).
        colors: (C, N, D) per-camera colours (or any features).
        width, height: image size.
        backgrounds: (C, D) colour behind everything, or None for zeros.

    Returns:
        ``(colors, alphas, depths)`` of shapes (C, H, W, D), (C, H, W, 1) and (C, H, W, 1); the depth is
        the expected depth ``sum(w_i z_i) / sum(w_i)`` (0 where nothing is drawn).
    """
    num_cams = projected.depths.shape[0]
    dim = colors.shape[-1]
    pix = pixel_centers(height, width, device=colors.device, dtype=colors.dtype).reshape(-1, 2)
    out_colors, out_alphas, out_depths = [], [], []
    for cam in range(num_cams):
        order = torch.argsort(projected.depths[cam].detach(), stable=True)
        visible = projected.visible[cam][order]
        order = order[visible]
        offsets = pix[:, None, :] - projected.means2d[cam, order][None]  # (P, K, 2)
        alphas = gaussian_alpha(offsets, projected.conics[cam, order][None], projected.opacities[cam, order][None])
        weights = composite_weights(alphas)  # (P, K)
        alpha = weights.sum(-1, keepdim=True)
        color = weights @ colors[cam, order]
        if backgrounds is not None:
            color = color + (1.0 - alpha) * backgrounds[cam]
        depth = (weights @ projected.depths[cam, order][:, None]) / torch.clamp(alpha, min=1e-10)
        out_colors.append(color.reshape(height, width, dim))
        out_alphas.append(alpha.reshape(height, width, 1))
        out_depths.append(depth.reshape(height, width, 1))
    if num_cams == 0:
        empty = colors.new_zeros((0, height, width, dim))
        return empty, empty[..., :1], empty[..., :1]
    return torch.stack(out_colors), torch.stack(out_alphas), torch.stack(out_depths)
