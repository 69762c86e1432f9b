"""An object's rigid (similarity) trajectory in the world: scale, rotation and translation over time (TC4D's idea).

World position of an object-frame point ``x`` at time t: ``s(t) R(t) x + T(t)``; each of ``log s``, the
axis-angle of ``R`` and ``T`` is a cubic B-spline over normalised time.
"""

from __future__ import annotations

import torch
from kornia.geometry.conversions import axis_angle_to_quaternion
from torch import nn

from scene4d.conventions import quat_multiply, quat_to_rotmat
from scene4d.motion import spline


class RigidTrajectory(nn.Module):
    """Spline-parameterised object-to-world similarity transform.

    Args:
        num_knots: spline control values.
        translations: optional (num_knots, 3) initial translation knots (e.g. from :func:`spline.fit_values`).
    """

    def __init__(self, num_knots: int, translations: torch.Tensor | None = None):
        super().__init__()
        init = torch.zeros(num_knots, 3) if translations is None else translations.clone().float()
        self.translation_knots = nn.Parameter(init)
        self.rotation_knots = nn.Parameter(torch.zeros(num_knots, 3))
        self.log_scale_knots = nn.Parameter(torch.zeros(num_knots, 1))

    @classmethod
    def from_positions(cls, times: torch.Tensor, positions: torch.Tensor, num_knots: int) -> "RigidTrajectory":
        """A trajectory whose translation follows ``positions`` (B, 3) observed at ``times`` (B,)."""
        return cls(num_knots, spline.fit_values(positions.double(), times.double(), num_knots).float())

    def transform(self, times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """At ``times`` (B,): scales (B,), wxyz rotations (B, 4), translations (B, 3)."""
        scales = spline.evaluate(self.log_scale_knots, times)[:, 0].exp()
        quats = axis_angle_to_quaternion(spline.evaluate(self.rotation_knots, times))
        return scales, quats, spline.evaluate(self.translation_knots, times)

    def matrices(self, times: torch.Tensor) -> torch.Tensor:
        """(B, 4, 4) object-to-world similarity matrices at ``times``."""
        scales, quats, translations = self.transform(times)
        matrices = torch.eye(4, dtype=translations.dtype, device=translations.device).repeat(times.shape[0], 1, 1)
        matrices[:, :3, :3] = scales[:, None, None] * quat_to_rotmat(quats)
        matrices[:, :3, 3] = translations
        return matrices

    def forward(self, points: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, times: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Move object-frame Gaussians into the world.

        Args:
            points: (B, N, 3) positions; quats: (B, N, 4) orientations; scales: (N, 3) activated scales.
            times: (B,) normalised times matching the leading dim.

        Returns:
            World ``(points (B, N, 3), quats (B, N, 4), scales (B, N, 3))``.
        """
        s, q, t = self.transform(times)
        rot = quat_to_rotmat(q)
        world = s[:, None, None] * torch.einsum("bij,bnj->bni", rot, points) + t[:, None, :]
        return world, quat_multiply(q[:, None, :], quats), s[:, None, None] * scales[None]
