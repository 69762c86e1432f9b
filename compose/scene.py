"""The composed scene: static background Gaussians plus moving objects, posed together at any time."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from scene4d.conventions import quat_multiply
from scene4d.dynamic_object import DynamicObject
from scene4d.gaussians import Gaussians
from scene4d.render.render import RenderOutput, render
from scene4d.render.sh import eval_sh, num_sh_bases
from kornia.geometry.conversions import rotation_matrix_to_quaternion

BACKGROUND_LABEL = 0


@dataclass
class SceneObject:
    """One object in the scene and the edits applied to it.

    Attributes:
        object_id: id >= 1 (as in the masks).
        name: human-readable name.
        model: the fitted 4D model (its own trajectory puts it in the world).
        edit: (4, 4) similarity applied in the world after the object's trajectory (move/rotate/scale).
        time_offset: added to the scene time before evaluating the object (normalised time; shifts it in time).
        visible: False removes the object from renders and exports.
    """

    object_id: int
    name: str
    model: DynamicObject
    edit: torch.Tensor = field(default_factory=lambda: torch.eye(4))
    time_offset: float = 0.0
    visible: bool = True


@dataclass
class PosedScene:
    """All visible Gaussians at one time, in the world (activated values).

    Attributes:
        means: (N, 3); quats: (N, 4); scales: (N, 3); opacities: (N,); colors: (N, K, 3) SH of one degree.
        labels: (N,) long, object id per Gaussian (0 for the background).
        sh_degree: degree of ``colors``.
    """

    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor
    labels: torch.Tensor
    sh_degree: int


def _pad_sh(colors: torch.Tensor, degree: int) -> torch.Tensor:
    missing = num_sh_bases(degree) - colors.shape[1]
    return torch.cat([colors, colors.new_zeros(colors.shape[0], missing, 3)], dim=1) if missing > 0 else colors


def _apply_edit(edit: torch.Tensor, means, quats, scales):
    linear = edit[:3, :3]
    scale = torch.linalg.det(linear).abs().pow(1.0 / 3.0)
    rotation_quat = rotation_matrix_to_quaternion((linear / scale).contiguous())
    return (means @ linear.T + edit[:3, 3], quat_multiply(rotation_quat[None], quats), scales * scale)


@dataclass
class Scene:
    """Background plus objects.

    Attributes:
        background: static Gaussians in world coordinates, or None.
        objects: the objects, each with its edits.
        num_frames: frames of the input clip (times are normalised over them).
    """

    background: Gaussians | None
    objects: list[SceneObject]
    num_frames: int

    def object(self, object_id: int) -> SceneObject:
        for obj in self.objects:
            if obj.object_id == object_id:
                return obj
        raise KeyError(f"no object {object_id} in the scene (ids: {[o.object_id for o in self.objects]})")

    def posed(self, time: float, include_background: bool = True, object_ids: list[int] | None = None) -> PosedScene:
        """Every visible Gaussian at normalised ``time``, optionally restricted to some objects."""
        parts = []
        if include_background and self.background is not None:
            g = self.background
            parts.append((g.get_means(), g.get_quats(), g.get_scales(), g.get_opacities(), g.colors(),
                          BACKGROUND_LABEL))
        for obj in self.objects:
            if not obj.visible or (object_ids is not None and obj.object_id not in object_ids):
                continue
            t = torch.tensor([min(max(time + obj.time_offset, 0.0), 1.0)])
            posed = obj.model.posed(t)
            means, quats, scales = _apply_edit(obj.edit, posed.means[0], posed.quats[0], posed.scales[0])
            parts.append((means, quats, scales, posed.opacities, posed.colors, obj.object_id))
        if not parts:
            raise ValueError("the scene has nothing to show (no background and no visible object selected)")
        degree = max(round(p[4].shape[1] ** 0.5) - 1 for p in parts)
        return PosedScene(
            means=torch.cat([p[0] for p in parts]), quats=torch.cat([p[1] for p in parts]),
            scales=torch.cat([p[2] for p in parts]), opacities=torch.cat([p[3] for p in parts]),
            colors=torch.cat([_pad_sh(p[4], degree) for p in parts]),
            labels=torch.cat([torch.full((p[0].shape[0],), p[5], dtype=torch.long) for p in parts]),
            sh_degree=degree,
        )

    def render(self, time: float, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
               backgrounds: torch.Tensor | None = None, with_labels: bool = False, backend: str = "auto",
               **select) -> tuple[RenderOutput, torch.Tensor | None]:
        """Render the scene at one time into C cameras.

        Args:
            time: normalised time; viewmats (C, 4, 4); Ks (C, 3, 3).
            backgrounds: (C, 3) or None.
            with_labels: also return the per-pixel object id of the largest blending weight.
            select: ``include_background`` / ``object_ids`` as in :meth:`posed`.

        Returns:
            ``(output, labels)``: colours (C, H, W, 3) etc., and (C, H, W) long ids (-1 where empty) or None.
        """
        posed = self.posed(time, **select)
        if not with_labels:
            out = render(posed.means, posed.quats, posed.scales, posed.opacities, posed.colors, viewmats, Ks,
                         width, height, backgrounds=backgrounds, sh_degree=posed.sh_degree, backend=backend)
            return out, None
        cam_centers = torch.linalg.inv(viewmats)[:, :3, 3]
        dirs = posed.means[None] - cam_centers[:, None]
        rgb = torch.clamp_min(eval_sh(posed.sh_degree, posed.colors[None].expand(len(viewmats), -1, -1, -1), dirs)
                              + 0.5, 0.0)
        ids = torch.unique(posed.labels)
        onehot = (posed.labels[:, None] == ids[None]).float()
        features = torch.cat([rgb, onehot[None].expand(len(viewmats), -1, -1)], dim=-1)
        if backgrounds is not None:
            backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(len(viewmats), ids.numel())], dim=-1)
        out = render(posed.means, posed.quats, posed.scales, posed.opacities, features, viewmats, Ks,
                     width, height, backgrounds=backgrounds, backend=backend)
        weights = out.colors[..., 3:]
        labels = torch.where(out.alphas[..., 0] > 0.5, ids[weights.argmax(-1)], torch.full_like(ids[:1], -1))
        return RenderOutput(out.colors[..., :3], out.alphas, out.depths, out.info), labels
