"""Coordinate, rotation, pixel and time conventions, written once (see docs/conventions.md).

- Quaternions are ``(w, x, y, z)``; they need not be unit length where a function says it normalises.
- Camera extrinsics are 4x4 **world-to-camera** matrices in OpenCV axes: x right, y down, z forward.
- Intrinsics ``K`` are 3x3 in pixels. The centre of the top-left pixel is at ``(0.5, 0.5)``, so pixel
  ``(row i, column j)`` covers ``[j, j + 1) x [i, i + 1)`` and a point projects to
  ``(fx * x / z + cx, fy * y / z + cy)`` in those continuous coordinates.
- Frames are indexed by an integer ``t`` in ``[0, T)`` and by normalised time ``t / (T - 1)`` in ``[0, 1]``.

Conversions to other conventions happen only at library boundaries (gsplat, pycolmap, open3d, viewers).
"""

from __future__ import annotations

import torch
from kornia.geometry.conversions import quaternion_to_rotation_matrix


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of (not necessarily unit) wxyz quaternions.

    Args:
        quats: (..., 4) quaternions ``(w, x, y, z)``; normalised here.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    if quats.shape[-1] != 4:
        raise ValueError(f"quats: expected (..., 4), got {tuple(quats.shape)}")
    return quaternion_to_rotation_matrix(torch.nn.functional.normalize(quats, dim=-1))


def pixel_centers(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Continuous coordinates of every pixel centre.

    Returns:
        (height, width, 2) tensor of ``(x, y)``; entry ``[i, j]`` is ``(j + 0.5, i + 0.5)``.
    """
    ys = torch.arange(height, device=device, dtype=dtype) + 0.5
    xs = torch.arange(width, device=device, dtype=dtype) + 0.5
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)


def world_to_camera(points: torch.Tensor, viewmats: torch.Tensor) -> torch.Tensor:
    """Transform world points into camera frames.

    Args:
        points: (N, 3) world points.
        viewmats: (C, 4, 4) world-to-camera matrices.

    Returns:
        (C, N, 3) points in each camera's OpenCV frame.
    """
    rotations, translations = viewmats[:, :3, :3], viewmats[:, :3, 3]
    return torch.einsum("cij,nj->cni", rotations, points) + translations[:, None, :]


def project_points(points: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pinhole projection of world points.

    Args:
        points: (N, 3) world points.
        viewmats: (C, 4, 4) world-to-camera matrices.
        Ks: (C, 3, 3) intrinsics in pixels.

    Returns:
        ``(pixels, depths)``: (C, N, 2) continuous pixel coordinates and (C, N) camera-space z.
        Points with ``z <= 0`` get non-finite or meaningless pixels; mask them with ``depths``.
    """
    cam = world_to_camera(points, viewmats)
    depths = cam[..., 2]
    uv = cam[..., :2] / depths[..., None]
    pixels = torch.einsum("cij,cnj->cni", Ks[:, :2, :2], uv) + Ks[:, None, :2, 2]
    return pixels, depths


def backproject_depth(depth: torch.Tensor, K: torch.Tensor, camtoworld: torch.Tensor) -> torch.Tensor:
    """Lift a depth map (z along the optical axis) to world points at the pixel centres.

    Args:
        depth: (H, W) depth in camera-z units.
        K: (3, 3) intrinsics.
        camtoworld: (4, 4) camera-to-world matrix.

    Returns:
        (H, W, 3) world points.
    """
    height, width = depth.shape
    pix = pixel_centers(height, width, device=depth.device, dtype=depth.dtype)
    x = (pix[..., 0] - K[0, 2]) / K[0, 0] * depth
    y = (pix[..., 1] - K[1, 2]) / K[1, 1] * depth
    cam = torch.stack([x, y, depth], dim=-1)
    return cam @ camtoworld[:3, :3].T + camtoworld[:3, 3]


def normalized_time(frame_index: torch.Tensor | int, num_frames: int) -> torch.Tensor:
    """Map integer frame indices in ``[0, T)`` to normalised time in ``[0, 1]`` (0 for a single frame)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    t = torch.as_tensor(frame_index, dtype=torch.float32)
    return t / max(num_frames - 1, 1)


def frame_index(time: torch.Tensor | float, num_frames: int) -> torch.Tensor:
    """Inverse of :func:`normalized_time`, as a (possibly fractional) frame index."""
    return torch.as_tensor(time, dtype=torch.float32) * max(num_frames - 1, 1)


def quat_multiply(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``q1 * q2`` of wxyz quaternions (the rotation of ``q2`` followed by ``q1``).

    Args:
        q1, q2: (..., 4) broadcastable quaternions.

    Returns:
        (..., 4) product.
    """
    w1, x1, y1, z1 = q1.unbind(-1)
    w2, x2, y2, z2 = q2.unbind(-1)
    return torch.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        dim=-1,
    )
