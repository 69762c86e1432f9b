"""One moving object: canonical Gaussians, a non-rigid deformation and an object-to-world trajectory.

Rendering the object at time t applies, in order: the deformation (in the object's canonical frame), the
object-to-world similarity, then the camera of that frame (DreamScene4D's factorisation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from scene4d.gaussians import Gaussians
from scene4d.motion.hexplane import HexPlaneDeformation
from scene4d.motion.skinning import ControlPointDeformation
from scene4d.motion.trajectory import RigidTrajectory
from scene4d.render.render import RenderOutput, render

Deformation = ControlPointDeformation | HexPlaneDeformation
"""A non-rigid deformation: ``deformation(points (N, 3), quats (N, 4), times (B,)) -> ((B, N, 3), (B, N, 4))``."""


@dataclass
class PosedGaussians:
    """Gaussians placed in the world at B times (activated values, ready for :func:`render`).

    Attributes:
        means: (B, N, 3); quats: (B, N, 4); scales: (B, N, 3); opacities: (N,); colors: (N, K, 3) SH.
        sh_degree: degree of ``colors``.
    """

    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor
    sh_degree: int


class DynamicObject(nn.Module):
    """An object's 4D model.

    Args:
        gaussians: canonical Gaussians in the object's frame.
        deformation: non-rigid motion in the canonical frame (control points or a hexplane field).
        trajectory: object-to-world motion.
    """

    def __init__(self, gaussians: Gaussians, deformation: Deformation, trajectory: RigidTrajectory):
        super().__init__()
        self.gaussians = gaussians
        self.deformation = deformation
        self.trajectory = trajectory

    def posed(self, times: torch.Tensor, deform: bool = True) -> PosedGaussians:
        """The object's Gaussians in the world at normalised ``times`` (B,)."""
        g = self.gaussians
        means, quats = g.get_means(), g.get_quats()
        if deform:
            means, quats = self.deformation(means, quats, times)
        else:
            means, quats = means.expand(times.shape[0], -1, -1), quats.expand(times.shape[0], -1, -1)
        world_means, world_quats, world_scales = self.trajectory(means, quats, g.get_scales(), times)
        return PosedGaussians(world_means, world_quats, world_scales, g.get_opacities(), g.colors(), g.sh_degree)

    def render(self, times: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
               backgrounds: torch.Tensor | None = None, deform: bool = True, backend: str = "auto"
               ) -> list[RenderOutput]:
        """Render the object at each time through that time's camera.

        Args:
            times: (B,) normalised times; viewmats: (B, 4, 4); Ks: (B, 3, 3).
            backgrounds: (B, 3) or None.

        Returns:
            B :class:`RenderOutput`, each with one camera.
        """
        posed = self.posed(times, deform=deform)
        outputs = []
        for b in range(times.shape[0]):
            outputs.append(render(
                posed.means[b], posed.quats[b], posed.scales[b], posed.opacities, posed.colors,
                viewmats[b:b + 1], Ks[b:b + 1], width, height,
                backgrounds=None if backgrounds is None else backgrounds[b:b + 1],
                sh_degree=posed.sh_degree, backend=backend,
            ))
        return outputs
