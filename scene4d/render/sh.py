"""Real spherical harmonics up to degree 3, in the convention of the 3DGS reference code and gsplat."""

from __future__ import annotations

import torch

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def num_sh_bases(degree: int) -> int:
    """Number of coefficients per channel for SH of ``degree``: ``(degree + 1) ** 2``."""
    return (degree + 1) ** 2


def sh_bases(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """Evaluate the SH basis functions.

    Args:
        degree: 0 to 3.
        dirs: (..., 3) directions (normalised here).

    Returns:
        (..., (degree + 1) ** 2) basis values.
    """
    if not 0 <= degree <= 3:
        raise ValueError(f"sh degree must be in [0, 3], got {degree}")
    x, y, z = torch.nn.functional.normalize(dirs, dim=-1).unbind(-1)
    bases = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        bases += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        bases += [
            SH_C2[0] * xy,
            SH_C2[1] * yz,
            SH_C2[2] * (2.0 * zz - xx - yy),
            SH_C2[3] * xz,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        bases += [
            SH_C3[0] * y * (3.0 * xx - yy),
            SH_C3[1] * xy * z,
            SH_C3[2] * y * (4.0 * zz - xx - yy),
            SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            SH_C3[4] * x * (4.0 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(bases, dim=-1)


def eval_sh(degree: int, coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """View-dependent colour from SH coefficients (the first ``(degree + 1) ** 2`` are used).

    Args:
        degree: active degree, 0 to 3.
        coeffs: (..., K, 3) coefficients with ``K >= (degree + 1) ** 2``.
        dirs: (..., 3) viewing directions from the camera to the Gaussian.

    Returns:
        (..., 3) colour before the ``+ 0.5`` offset and clamping that :func:`render` applies.
    """
    bases = sh_bases(degree, dirs)
    return (bases[..., None] * coeffs[..., : bases.shape[-1], :]).sum(dim=-2)


def sh_colors(degree: int, coeffs: torch.Tensor, means: torch.Tensor, cam_centers: torch.Tensor) -> torch.Tensor:
    """Per-camera colours ``max(SH(dir) + 0.5, 0)`` as :func:`~scene4d.render.render.render` applies them.

    Args:
        degree: active degree, 0 to 3.
        coeffs: (N, K, 3) coefficients with ``K >= (degree + 1) ** 2``.
        means: (N, 3) Gaussian centres.
        cam_centers: (C, 3) camera centres in world coordinates.

    Returns:
        (C, N, 3) colours seen from each camera.
    """
    dirs = means[None] - cam_centers[:, None]
    return torch.clamp_min(eval_sh(degree, coeffs[None].expand(len(cam_centers), -1, -1, -1), dirs) + 0.5, 0.0)


def rgb_to_sh0(rgb: torch.Tensor) -> torch.Tensor:
    """Degree-0 coefficient whose rendered colour is ``rgb``: (..., 3) -> (..., 3)."""
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_sh0`."""
    return sh0 * SH_C0 + 0.5
