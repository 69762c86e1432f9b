"""EWA projection of 3D Gaussians to screen-space ellipses, shared by every CPU rasterizer.

The rules here define what every backend must reproduce (gsplat's "classic" mode):

- A Gaussian is culled for a camera when its centre's depth is outside ``(near_plane, far_plane)``, its
  2D covariance is degenerate, its opacity is below ``ALPHA_THRESHOLD`` or its footprint misses the image.
- The 2D covariance is ``J W Sigma W^T J^T + eps2d * I`` where ``J`` is the perspective Jacobian with
  the camera-space ``x/z, y/z`` clamped to 1.3x the field of view (as gsplat does).
- A Gaussian contributes ``alpha = min(ALPHA_MAX, opacity * exp(-0.5 * d^T Sigma2d^-1 d))`` to a
  pixel centre at offset ``d`` only where ``alpha >= ALPHA_THRESHOLD``. That region is exactly the
  ellipse ``d^T Sigma2d^-1 d <= 2 ln(opacity / ALPHA_THRESHOLD)``, so the axis-aligned box returned in
  ``radii`` bounds it and tile binning never drops a contribution.
- Compositing is front to back by depth; a Gaussian whose inclusion would drop the transmittance to
  ``TRANSMITTANCE_MIN`` or below is not composited, nor is anything behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from scene4d.conventions import quat_to_rotmat

ALPHA_THRESHOLD = 1.0 / 255.0
ALPHA_MAX = 0.999
TRANSMITTANCE_MIN = 1e-4


@dataclass
class ProjectedGaussians:
    """Per-camera screen-space Gaussians.

    Attributes:
        means2d: (C, N, 2) centres in pixel coordinates (pixel centres at ``+0.5``).
        conics: (C, N, 3) upper triangle ``(a, b, c)`` of the inverse 2D covariance.
        depths: (C, N) camera-space z of the centres.
        radii: (C, N, 2) integer half-extents in x and y of the footprint; 0 where culled.
        opacities: (C, N) opacities, broadcast per camera.
    """

    means2d: torch.Tensor
    conics: torch.Tensor
    depths: torch.Tensor
    radii: torch.Tensor
    opacities: torch.Tensor

    @property
    def visible(self) -> torch.Tensor:
        """(C, N) bool: the Gaussian is drawn by this camera."""
        return (self.radii > 0).all(dim=-1)


def covariances_3d(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """World covariances ``R S S^T R^T``.

    Args:
        quats: (N, 4) wxyz quaternions (normalised here).
        scales: (N, 3) standard deviations along the local axes (already activated).

    Returns:
        (N, 3, 3) covariance matrices.
    """
    rotmats = quat_to_rotmat(quats)
    m = rotmats * scales[:, None, :]
    return m @ m.transpose(-1, -2)


def project_gaussians(
    means: torch.Tensor,  # (N, 3)
    quats: torch.Tensor,  # (N, 4)
    scales: torch.Tensor,  # (N, 3)
    opacities: torch.Tensor,  # (N,)
    viewmats: torch.Tensor,  # (C, 4, 4)
    Ks: torch.Tensor,  # (C, 3, 3)
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
) -> ProjectedGaussians:
    """Project Gaussians into every camera (differentiable in all float inputs).

    Args:
        means: (N, 3) world centres.
        quats: (N, 4) wxyz rotations, normalised here.
        scales: (N, 3) activated scales.
        opacities: (N,) activated opacities in [0, 1].
        viewmats: (C, 4, 4) world-to-camera matrices (OpenCV axes).
        Ks: (C, 3, 3) intrinsics in pixels.
        width, height: image size in pixels.
        near_plane, far_plane: depth range of drawn centres.
        eps2d: isotropic blur added to the 2D covariance, in pixels squared.

    Returns:
        :class:`ProjectedGaussians` with leading dims ``(C, N)``.
    """
    rot_cw, t_cw = viewmats[:, :3, :3], viewmats[:, :3, 3]
    cam = torch.einsum("cij,nj->cni", rot_cw, means) + t_cw[:, None, :]
    x, y, z = cam.unbind(-1)

    in_depth = (z > near_plane) & (z < far_plane)
    # Culled Gaussians still flow through the arithmetic; keep it finite there so gradients stay clean.
    z_safe = torch.where(in_depth, z, torch.ones_like(z))

    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    tan_fov_x, tan_fov_y = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_fov_x, cx / fx + 0.3 * tan_fov_x
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_fov_y, cy / fy + 0.3 * tan_fov_y
    tx = z_safe * torch.minimum(torch.maximum(x / z_safe, -lim_x_neg), lim_x_pos)
    ty = z_safe * torch.minimum(torch.maximum(y / z_safe, -lim_y_neg), lim_y_pos)

    zeros = torch.zeros_like(z_safe)
    jac = torch.stack(
        [
            torch.stack([fx / z_safe, zeros, -fx * tx / z_safe**2], dim=-1),
            torch.stack([zeros, fy / z_safe, -fy * ty / z_safe**2], dim=-1),
        ],
        dim=-2,
    )  # (C, N, 2, 3)
    cov_world = covariances_3d(quats, scales)
    cov_cam = rot_cw[:, None] @ cov_world[None] @ rot_cw[:, None].transpose(-1, -2)
    cov2d = jac @ cov_cam @ jac.transpose(-1, -2)
    cov_a = cov2d[..., 0, 0] + eps2d
    cov_b = cov2d[..., 0, 1]
    cov_c = cov2d[..., 1, 1] + eps2d
    det = cov_a * cov_c - cov_b**2
    valid = in_depth & (det > 0)
    det_safe = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([cov_c / det_safe, -cov_b / det_safe, cov_a / det_safe], dim=-1)

    means2d = torch.stack([fx * x / z_safe + cx, fy * y / z_safe + cy], dim=-1)

    opac = opacities[None, :].expand_as(z)
    with torch.no_grad():
        # Footprint: the ellipse where alpha >= ALPHA_THRESHOLD (see module docstring).
        log_ratio = torch.log(torch.clamp(opac / ALPHA_THRESHOLD, min=1.0))
        extent = torch.sqrt(2.0 * log_ratio)
        radius_x = torch.ceil(extent * torch.sqrt(torch.clamp(cov_a, min=0.0)))
        radius_y = torch.ceil(extent * torch.sqrt(torch.clamp(cov_c, min=0.0)))
        on_screen = (
            (means2d[..., 0] + radius_x > 0)
            & (means2d[..., 0] - radius_x < width)
            & (means2d[..., 1] + radius_y > 0)
            & (means2d[..., 1] - radius_y < height)
        )
        keep = valid & (opac >= ALPHA_THRESHOLD) & (radius_x > 0) & (radius_y > 0) & on_screen
        radii = torch.stack([radius_x, radius_y], dim=-1).to(torch.int32) * keep[..., None]

    return ProjectedGaussians(means2d=means2d, conics=conics, depths=z, radii=radii, opacities=opac)


def gaussian_alpha(
    offsets: torch.Tensor, conics: torch.Tensor, opacities: torch.Tensor
) -> torch.Tensor:
    """Thresholded alpha of Gaussians at pixel offsets.

    Args:
        offsets: (..., 2) pixel centre minus Gaussian centre.
        conics: (..., 3) inverse covariance ``(a, b, c)``, broadcastable to ``offsets[..., 0]``.
        opacities: (...) opacities, broadcastable likewise.

    Returns:
        (...) alpha, zero below ``ALPHA_THRESHOLD`` and clamped to ``ALPHA_MAX``.
    """
    dx, dy = offsets[..., 0], offsets[..., 1]
    power = -0.5 * (conics[..., 0] * dx * dx + conics[..., 2] * dy * dy) - conics[..., 1] * dx * dy
    alpha = torch.clamp(opacities * torch.exp(torch.clamp(power, max=0.0)), max=ALPHA_MAX)
    return torch.where(alpha >= ALPHA_THRESHOLD, alpha, torch.zeros_like(alpha))


def composite_weights(alphas: torch.Tensor) -> torch.Tensor:
    """Front-to-back blending weights ``alpha_i * T_i`` with early termination.

    Args:
        alphas: (..., K) alphas sorted front to back along the last dim.

    Returns:
        (..., K) weights; their sum over K is the accumulated alpha.
    """
    transmit_after = torch.cumprod(1.0 - alphas, dim=-1)
    transmit_before = torch.cat([torch.ones_like(alphas[..., :1]), transmit_after[..., :-1]], dim=-1)
    # The transmittance only decreases, so this mask is a prefix: termination stops everything behind.
    included = transmit_after > TRANSMITTANCE_MIN
    return torch.where(included, alphas * transmit_before, torch.zeros_like(alphas))

