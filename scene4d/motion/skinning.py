"""Non-rigid deformation by sparse control points blended with linear blend skinning (SC-GS / SC4D style).

Each control point ``c_k`` carries a rigid transform over time (rotation ``R_k(t)``, translation ``T_k(t)``),
parameterised by cubic B-splines of axis-angle vectors and offsets, so it can be evaluated at any time.
A canonical point ``x`` moves to ``sum_k w_k (R_k (x - c_k) + c_k + T_k)`` over its ``K`` nearest control
points, with Gaussian RBF weights ``w_k ~ exp(-|x - c_k|^2 / (2 r_k^2))`` normalised to sum to 1.
"""

from __future__ import annotations

import torch
from kornia.geometry.conversions import axis_angle_to_quaternion
from torch import nn

from scene4d.conventions import quat_multiply, quat_to_rotmat
from scene4d.motion import spline


def skinning_weights(points: torch.Tensor, control_points: torch.Tensor, radii: torch.Tensor, k: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest control points and their normalised RBF weights.

    Args:
        points: (N, 3) canonical points.
        control_points: (M, 3) canonical control points.
        radii: (M,) RBF radii.
        k: neighbours per point (clamped to M).

    Returns:
        ``(indices, weights)``: (N, k) long and (N, k) weights summing to 1 per point.
    """
    k = min(k, control_points.shape[0])
    # The (N, M) distances only choose the neighbours; the gradient flows through the (N, k) chosen ones, so
    # backward does not touch an N x M matrix (most of a fit step's skinning cost otherwise).
    with torch.no_grad():
        _, indices = torch.topk(torch.cdist(points, control_points), k, dim=1, largest=False)
    dist2 = (points[:, None, :] - control_points[indices]).square().sum(dim=-1)
    logits = -dist2 / (2.0 * radii[indices].square())
    return indices, torch.softmax(logits, dim=1)


def blend(points: torch.Tensor, quats: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor,
          control_points: torch.Tensor, rotations: torch.Tensor, rotation_quats: torch.Tensor,
          translations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply blended control-point transforms at B times.

    Args:
        points: (N, 3) canonical points; quats: (N, 4) their wxyz orientations.
        indices, weights: (N, k) from :func:`skinning_weights`.
        control_points: (M, 3).
        rotations: (B, M, 3, 3), rotation_quats: (B, M, 4), translations: (B, M, 3) per control point.

    Returns:
        ``(points, quats)`` of shapes (B, N, 3) and (B, N, 4).
    """
    centers = control_points[indices]  # (N, k, 3)
    local = (points[:, None, :] - centers)  # (N, k, 3)
    rotated = torch.einsum("bnkij,nkj->bnki", rotations[:, indices], local)
    moved = rotated + centers[None] + translations[:, indices]
    new_points = (weights[None, :, :, None] * moved).sum(dim=2)
    blended_q = (weights[None, :, :, None] * rotation_quats[:, indices]).sum(dim=2)
    new_quats = quat_multiply(torch.nn.functional.normalize(blended_q, dim=-1), quats[None])
    return new_points, new_quats


class ControlPointDeformation(nn.Module):
    """Learnable control points with spline-parameterised rigid transforms over time.

    Args:
        control_points: (M, 3) initial canonical positions.
        num_knots: spline control values over normalised time.
        radius: initial RBF radius of every control point.
        neighbours: control points blended per Gaussian.
    """

    def __init__(self, control_points: torch.Tensor, num_knots: int, radius: float, neighbours: int = 4):
        super().__init__()
        num_points = control_points.shape[0]
        self.neighbours = neighbours
        self.control_points = nn.Parameter(control_points.clone())
        self.log_radii = nn.Parameter(torch.full((num_points,), float(radius)).log().to(control_points))
        self.rotation_knots = nn.Parameter(torch.zeros(num_knots, num_points, 3).to(control_points))
        self.translation_knots = nn.Parameter(torch.zeros(num_knots, num_points, 3).to(control_points))

    @property
    def num_control_points(self) -> int:
        return self.control_points.shape[0]

    def transforms(self, times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-control-point transforms at ``times`` (B,): rotations (B, M, 3, 3), quats (B, M, 4), translations (B, M, 3)."""
        quats = axis_angle_to_quaternion(spline.evaluate(self.rotation_knots, times))
        return quat_to_rotmat(quats), quats, spline.evaluate(self.translation_knots, times)

    def deformed_control_points(self, times: torch.Tensor) -> torch.Tensor:
        """(B, M, 3) control point positions at ``times``."""
        return self.control_points[None] + spline.evaluate(self.translation_knots, times)

    def forward(self, points: torch.Tensor, quats: torch.Tensor, times: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Deform canonical ``points`` (N, 3) and ``quats`` (N, 4) to times (B,): returns (B, N, 3), (B, N, 4)."""
        indices, weights = skinning_weights(points, self.control_points, self.log_radii.exp(), self.neighbours)
        rotations, rotation_quats, translations = self.transforms(times)
        return blend(points, quats, indices, weights, self.control_points, rotations, rotation_quats, translations)
