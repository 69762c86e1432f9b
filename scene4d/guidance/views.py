"""Novel views for guidance: cameras orbiting an object's centre, relative to a reference camera.

The orbit frame is the reference camera re-aimed at the centre (same position, its up direction kept as far as
the new viewing direction allows). An offset ``(elevation, azimuth)`` first raises the camera about the frame's
right axis, then turns it about the frame's up axis, both through the centre; distance to the centre and roll
are kept, so the offsets are exactly the relative camera Zero123 is conditioned on
(:func:`scene4d.guidance.conditioning.zero123_pose_embedding`). Matrices follow :mod:`scene4d.conventions`.
"""

from __future__ import annotations

import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix

from scene4d.guidance.config import GuidanceConfig


def sample_orbit_offsets(config: GuidanceConfig, n: int,
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(n,) elevation and (n,) azimuth changes in degrees, uniform over the config's ranges (elevation drawn first)."""
    def uniform(bounds: list[float]) -> torch.Tensor:
        return bounds[0] + (bounds[1] - bounds[0]) * torch.rand(n, generator=generator)

    elevation = uniform(config.elevation_range)
    return elevation, uniform(config.azimuth_range)


def orbit_viewmats(viewmat: torch.Tensor, center: torch.Tensor, elevation: torch.Tensor,
                   azimuth: torch.Tensor) -> torch.Tensor:
    """World-to-camera matrices of views orbiting ``center``.

    Args:
        viewmat: (4, 4) world-to-camera matrix of the reference camera (OpenCV axes).
        center: (3,) the object's centre in world coordinates (not at the camera).
        elevation: (B,) degrees, positive moving the camera up (about the orbit frame's right axis).
        azimuth: (B,) degrees, positive moving the camera to its right (about the orbit frame's up axis).

    Returns:
        (B, 4, 4) world-to-camera matrices looking at ``center`` from the reference camera's distance;
        zero offsets give the reference camera re-aimed at the centre.
    """
    if viewmat.shape != (4, 4) or center.shape != (3,):
        raise ValueError(f"viewmat, center: expected (4, 4) and (3,), got {tuple(viewmat.shape)}, "
                         f"{tuple(center.shape)}")
    if elevation.dim() != 1 or elevation.shape != azimuth.shape:
        raise ValueError(f"elevation, azimuth: expected two (B,) tensors, got {tuple(elevation.shape)}, "
                         f"{tuple(azimuth.shape)}")
    camtoworld = torch.linalg.inv(viewmat)
    origin = camtoworld[:3, 3]
    forward = torch.nn.functional.normalize(center - origin, dim=0)
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, -camtoworld[:3, 1]), dim=0)
    down = torch.linalg.cross(forward, right)
    frame = torch.stack([right, down, forward], dim=1)

    raise_axis = (-right)[None] * torch.deg2rad(elevation)[:, None].to(right)
    turn_axis = (-down)[None] * torch.deg2rad(azimuth)[:, None].to(right)
    rotation = axis_angle_to_rotation_matrix(turn_axis) @ axis_angle_to_rotation_matrix(raise_axis)

    out = torch.zeros(elevation.shape[0], 4, 4, dtype=viewmat.dtype, device=viewmat.device)
    rotation_wc = (rotation @ frame).transpose(1, 2)
    position = center + (rotation @ (origin - center)[:, None])[..., 0]
    out[:, :3, :3] = rotation_wc
    out[:, :3, 3] = -(rotation_wc @ position[..., None])[..., 0]
    out[:, 3, 3] = 1.0
    return out
