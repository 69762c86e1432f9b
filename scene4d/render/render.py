"""One differentiable entry point for Gaussian rendering: gsplat on CUDA, our own rasterizers on the CPU."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import torch

from scene4d.render.projection import project_gaussians
from scene4d.render.sh import sh_colors

logger = logging.getLogger(__name__)

Backend = Literal["auto", "gsplat", "cpu-kernel", "torch", "reference"]


@dataclass
class RenderOutput:
    """What :func:`render` returns.

    Attributes:
        colors: (C, H, W, D) composited colours (or features), background included.
        alphas: (C, H, W, 1) accumulated opacity.
        depths: (C, H, W, 1) expected depth ``sum(w z) / sum(w)``; 0 where nothing is drawn.
        info: what densification needs, as gsplat names it: ``means2d`` (C, N, 2) (retains its grad when
            it requires one), ``radii`` (C, N, 2), ``width``, ``height``, ``n_cameras``, and ``backend``.
    """

    colors: torch.Tensor
    alphas: torch.Tensor
    depths: torch.Tensor
    info: dict


def _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, backgrounds):
    n = means.shape[0] if means.dim() == 2 else -1
    if means.dim() != 2 or means.shape[1] != 3:
        raise ValueError(f"means: expected (N, 3), got {tuple(means.shape)}")
    if quats.shape != (n, 4):
        raise ValueError(f"quats: expected ({n}, 4), got {tuple(quats.shape)}")
    if scales.shape != (n, 3):
        raise ValueError(f"scales: expected ({n}, 3), got {tuple(scales.shape)}")
    if opacities.shape != (n,):
        raise ValueError(f"opacities: expected ({n},), got {tuple(opacities.shape)}")
    if viewmats.dim() != 3 or viewmats.shape[1:] != (4, 4):
        raise ValueError(f"viewmats: expected (C, 4, 4), got {tuple(viewmats.shape)}")
    c = viewmats.shape[0]
    if Ks.shape != (c, 3, 3):
        raise ValueError(f"Ks: expected ({c}, 3, 3), got {tuple(Ks.shape)}")
    if sh_degree is None:
        if not (colors.dim() == 2 and colors.shape[0] == n) and not (colors.dim() == 3 and colors.shape[:2] == (c, n)):
            raise ValueError(f"colors: expected ({n}, D) or ({c}, {n}, D), got {tuple(colors.shape)}")
    elif colors.dim() != 3 or colors.shape[0] != n or colors.shape[2] != 3 or colors.shape[1] < (sh_degree + 1) ** 2:
        raise ValueError(f"colors: sh_degree={sh_degree} expects ({n}, K>={(sh_degree + 1) ** 2}, 3), got {tuple(colors.shape)}")
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    dim = 3 if sh_degree is not None else colors.shape[-1]
    if backgrounds is not None and backgrounds.shape != (c, dim):
        raise ValueError(f"backgrounds: expected ({c}, {dim}), got {tuple(backgrounds.shape)}")


def resolve_backend(backend: Backend, device: torch.device) -> str:
    """Pick the concrete rasterizer: gsplat on CUDA; on the CPU the compiled kernel when it builds, else torch."""
    if backend != "auto":
        return backend
    if device.type == "cuda":
        return "gsplat"
    from scene4d.render.cpu_kernel import kernel_available

    return "cpu-kernel" if kernel_available() else "torch"


def render(
    means: torch.Tensor,  # (N, 3)
    quats: torch.Tensor,  # (N, 4)
    scales: torch.Tensor,  # (N, 3)
    opacities: torch.Tensor,  # (N,)
    colors: torch.Tensor,  # (N, D), (C, N, D) or SH (N, K, 3)
    viewmats: torch.Tensor,  # (C, 4, 4)
    Ks: torch.Tensor,  # (C, 3, 3)
    width: int,
    height: int,
    backgrounds: torch.Tensor | None = None,  # (C, D)
    sh_degree: int | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    backend: Backend = "auto",
) -> RenderOutput:
    """Render Gaussians into C cameras with gsplat's argument conventions ("classic" mode, not packed).

    Args:
        means: (N, 3) world centres.
        quats: (N, 4) wxyz rotations (normalised inside).
        scales: (N, 3) activated scales (standard deviations).
        opacities: (N,) activated opacities in [0, 1].
        colors: (N, D) or (C, N, D) features of any width D (RGB, object ids, ...), or (N, K, 3) SH
            coefficients when ``sh_degree`` is given (then the colour is ``max(SH(dir) + 0.5, 0)``).
        viewmats: (C, 4, 4) world-to-camera matrices, OpenCV axes.
        Ks: (C, 3, 3) intrinsics in pixels.
        width, height: image size.
        backgrounds: (C, D) colour behind the Gaussians (zeros when None).
        sh_degree: active SH degree, or None for plain features.
        near_plane, far_plane, eps2d: as in :func:`~scene4d.render.projection.project_gaussians`.
        backend: ``auto`` (gsplat on CUDA, else the compiled CPU kernel, else torch), or one by name.

    Returns:
        :class:`RenderOutput` with colours (C, H, W, D), alphas and depths (C, H, W, 1).

    Example:
        >>> out = render(means, quats, scales, opacities, rgb, viewmats, Ks, 64, 48)
        >>> out.colors.shape  # (C, 48, 64, 3)
    """
    _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, backgrounds)
    name = resolve_backend(backend, means.device)
    if name == "gsplat":
        return _render_gsplat(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                              backgrounds, sh_degree, near_plane, far_plane, eps2d)

    project, shade, rasterize = _cpu_backend(name)
    projected = project(means, quats, scales, opacities, viewmats, Ks, width, height,
                        near_plane=near_plane, far_plane=far_plane, eps2d=eps2d)
    if projected.means2d.requires_grad:
        projected.means2d.retain_grad()
    num_cams = viewmats.shape[0]
    if sh_degree is not None:
        colors = shade(sh_degree, colors, means, torch.linalg.inv(viewmats)[:, :3, 3])
    elif colors.dim() == 2:
        colors = colors[None].expand(num_cams, -1, -1)

    out_colors, out_alphas, out_depths = rasterize(projected, colors, width, height, backgrounds)
    info = {"means2d": projected.means2d, "radii": projected.radii, "width": width, "height": height,
            "n_cameras": num_cams, "backend": name}
    return RenderOutput(out_colors, out_alphas, out_depths, info)


def _cpu_backend(name: str):
    """``(project, shade, rasterize)``: the projection, SH colours and rasterizer of a CPU backend."""
    if name == "torch":
        from scene4d.render.tiles import rasterize_tiles

        return project_gaussians, sh_colors, rasterize_tiles
    if name == "cpu-kernel":
        from scene4d.render.cpu_kernel import project_gaussians_cpu_kernel, rasterize_cpu_kernel, sh_colors_cpu_kernel

        return project_gaussians_cpu_kernel, sh_colors_cpu_kernel, rasterize_cpu_kernel
    if name == "reference":
        from scene4d.render.reference import rasterize_reference

        return project_gaussians, sh_colors, rasterize_reference
    raise ValueError(f"unknown render backend {name!r}; expected auto, gsplat, cpu-kernel, torch or reference")


def _render_gsplat(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                   backgrounds, sh_degree, near_plane, far_plane, eps2d) -> RenderOutput:
    from gsplat import rasterization

    rendered, alphas, info = rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, sh_degree=sh_degree,
        backgrounds=backgrounds, render_mode="RGB+ED", packed=False, rasterize_mode="classic",
    )
    info = {**info, "backend": "gsplat"}
    return RenderOutput(rendered[..., :-1], alphas, rendered[..., -1:], info)
