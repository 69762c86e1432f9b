"""Shared fixtures: seeded random scenes of 3D Gaussians seen by a few cameras."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest
import torch

from scene4d.render.projection import ProjectedGaussians, project_gaussians


@dataclass
class Scene:
    """Gaussians and cameras; every tensor is a leaf of the scene's dtype.

    Attributes:
        means: (N, 3), quats: (N, 4) wxyz, scales: (N, 3), opacities: (N,).
        colors: (C, N, D) per-camera features; backgrounds: (C, D).
        viewmats: (C, 4, 4) world-to-camera, OpenCV axes; Ks: (C, 3, 3).
    """

    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor
    backgrounds: torch.Tensor
    viewmats: torch.Tensor
    Ks: torch.Tensor
    width: int
    height: int

    def tensors(self) -> dict[str, torch.Tensor]:
        """The float tensors by name (the inputs one can differentiate)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("width", "height")}

    def requires_grad_(self) -> Scene:
        for tensor in self.tensors().values():
            tensor.requires_grad_(True)
        return self

    def project(self) -> ProjectedGaussians:
        return project_gaussians(self.means, self.quats, self.scales, self.opacities, self.viewmats, self.Ks,
                                 self.width, self.height)

    def append(self, means: torch.Tensor) -> Scene:
        """A copy with Gaussians added at ``means`` (M, 3): small, opaque, random colours."""
        m = len(means)
        g = torch.Generator().manual_seed(99)
        extra = {
            "means": means.to(self.means.dtype),
            "quats": torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=self.quats.dtype).expand(m, 4),
            "scales": torch.full((m, 3), 0.1, dtype=self.scales.dtype),
            "opacities": torch.full((m,), 0.9, dtype=self.opacities.dtype),
        }
        cat = {name: torch.cat([getattr(self, name).detach(), extra[name]]) for name in extra}
        colors = torch.rand(self.colors.shape[0], m, self.colors.shape[2], generator=g, dtype=self.colors.dtype)
        cat["colors"] = torch.cat([self.colors.detach(), colors], dim=1)
        return Scene(**cat, backgrounds=self.backgrounds.detach().clone(), viewmats=self.viewmats.detach().clone(),
                     Ks=self.Ks.detach().clone(), width=self.width, height=self.height)


def look_at(eyes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(C, 4, 4) OpenCV world-to-camera matrices of cameras at ``eyes`` (C, 3) looking at ``target`` (3,), y down."""
    forward = torch.nn.functional.normalize(target - eyes, dim=-1)
    down = torch.tensor([0.0, 1.0, 0.0], dtype=eyes.dtype).expand_as(forward)
    right = torch.nn.functional.normalize(torch.cross(down, forward, dim=-1), dim=-1)
    rot = torch.stack([right, torch.cross(forward, right, dim=-1), forward], dim=-2)
    viewmats = torch.eye(4, dtype=eyes.dtype).repeat(len(eyes), 1, 1)
    viewmats[:, :3, :3] = rot
    viewmats[:, :3, 3] = -(rot @ eyes[..., None])[..., 0]
    return viewmats


def random_scene(n=40, cams=1, width=37, height=29, dim=3, dtype=torch.float64, seed=0, sigma=(0.04, 0.25)):
    """Gaussians in the unit ball seen from ``cams`` cameras 4 units away; footprints of a few pixels.

    Args:
        sigma: range of the scales (log-uniform, per axis) in world units.
    """
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=dtype)

    direction = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=dtype), dim=-1)
    means = direction * rand(n, 1) ** (1 / 3)
    log_lo, log_hi = torch.log(torch.tensor(sigma, dtype=dtype))
    scales = torch.exp(log_lo + (log_hi - log_lo) * rand(n, 3))
    azimuth = 0.6 * (rand(cams) - 0.5) + torch.linspace(0, 0.8, cams, dtype=dtype)
    eyes = 4.0 * torch.stack([torch.sin(azimuth), 0.3 * (rand(cams) - 0.5), -torch.cos(azimuth)], dim=-1)
    Ks = torch.zeros(cams, 3, 3, dtype=dtype)
    Ks[:, 0, 0], Ks[:, 1, 1] = 1.1 * width, 1.1 * width * (1.0 + 0.1 * rand(cams))
    Ks[:, 0, 2], Ks[:, 1, 2], Ks[:, 2, 2] = 0.5 * width + rand(cams) - 0.5, 0.5 * height + rand(cams) - 0.5, 1.0
    return Scene(
        means=means,
        quats=torch.randn(n, 4, generator=g, dtype=dtype),
        scales=scales,
        opacities=0.1 + 0.85 * rand(n),
        colors=rand(cams, n, dim),
        backgrounds=rand(cams, dim),
        viewmats=look_at(eyes, torch.zeros(3, dtype=dtype)),
        Ks=Ks,
        width=width,
        height=height,
    )


@pytest.fixture
def make_scene():
    """Factory fixture: ``make_scene(n=40, cams=1, width=37, height=29, dim=3, dtype=float64, seed=0)``."""
    return random_scene
