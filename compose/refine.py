"""Joint refinement of the composed scene: objects' trajectories only, under the interaction losses.

Each object was fitted alone, so the composition can interpenetrate, float above the ground or let objects in
contact drift apart -- mostly along the camera rays, where a single view cannot tell. This stage moves whole
objects (translation and rotation knots of their trajectories, optionally their log-scale knots) to remove
that, with three kinds of terms:

- the interaction losses of :mod:`compose.interactions` (weights in :class:`InteractionConfig`);
- the composed render against the input frames (masked L1 of :mod:`scene4d.losses`, on the objects' pixels
  dilated by a margin: elsewhere the image does not depend on the trajectories);
- a prior keeping the knots near where they started (relative to each object's size), so the refinement
  corrects the composition instead of refitting the motion.

Shapes, deformations and the background are frozen. Metrics before and after come with the result.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from compose.interactions import (InteractionConfig, InteractionSetup, interaction_losses, object_points,
                                  penetration_fraction, prepare_interactions, signed_distance, weighted_total)
from compose.scene import Scene
from scene4d import losses
from scene4d.conventions import normalized_time


@dataclass
class RefineConfig:
    """Settings of the joint refinement."""

    iterations: int = 60
    """Optimisation steps (each renders ``frames_per_step`` input views)."""
    frames_per_step: int = 2
    """Input frames per step."""
    lr_translation: float = 2e-3
    """Adam step of the translation knots, relative to each object's extent."""
    lr_rotation: float = 2e-3
    """Adam step of the rotation knots (radians)."""
    optimise_scale: bool = False
    """Also refine each object's log-scale knots (its size)."""
    lr_scale: float = 1e-3
    """Adam step of the log-scale knots."""
    rgb: float = 1.0
    """Weight of the masked L1 between composed renders and input frames."""
    prior: float = 1.0
    """Weight of the knots' squared drift from their start (relative to the extent squared)."""
    mask_dilation: int = 4
    """Pixels around the objects' masks where the colour term applies."""
    metric_frames: int = 8
    """Frames (evenly spaced) on which the before/after metrics are measured."""
    interactions: InteractionConfig = field(default_factory=InteractionConfig)
    """Weights and thresholds of the interaction losses."""
    backend: str = "auto"
    """Render backend."""
    seed: int = 0
    """Seed of the frame sampling."""


@dataclass
class RefineResult:
    """The refined scene and what changed.

    Attributes:
        scene: the refined scene (new object models; background and inputs untouched).
        before, after: :func:`composition_metrics` of the input scene and of the refined one.
        history: rows ``{"step", "total", <term>: value}`` every 10 steps.
    """

    scene: Scene
    before: dict
    after: dict
    history: list[dict] = field(default_factory=list)


def _dilate(masks: torch.Tensor, pixels: int) -> torch.Tensor:
    if pixels <= 0:
        return masks.float()
    return torch.nn.functional.max_pool2d(masks.float()[:, None], 2 * pixels + 1, stride=1, padding=pixels)[:, 0]


def _render(scene: Scene, frame: int, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
            backend: str) -> torch.Tensor:
    time = float(normalized_time(frame, scene.num_frames))
    out, _ = scene.render(time, viewmats[frame:frame + 1], Ks[frame:frame + 1], width, height,
                          backgrounds=torch.zeros(1, 3), backend=backend)
    return out.colors


@torch.no_grad()
def composition_metrics(scene: Scene, setup: InteractionSetup, images: torch.Tensor, weights: torch.Tensor,
                        viewmats: torch.Tensor, Ks: torch.Tensor, frames: list[int], config: RefineConfig) -> dict:
    """Penetration, contact gaps, anchor drift and input-view colour error of a scene.

    Args:
        scene: the scene; setup: its interaction setup (contacts, anchors, supports).
        images: (T, H, W, 3) input frames; weights: (T, H, W, 1) colour-term weights.
        viewmats: (T, 4, 4); Ks: (T, 3, 3).
        frames: frames to measure on.
        config: thresholds and backend.

    Returns:
        ``{"penetration": {"a-b": mean fraction}, "max_penetration", "contact_gap": {"id": mean gap / extent},
        "anchor_drift": {"a-b": mean drift / extent}, "rgb_l1"}``.
    """
    centres = torch.linalg.inv(viewmats)[:, :3, 3]
    fractions: dict[str, list[float]] = {}
    for f in frames:
        time = float(normalized_time(f, scene.num_frames))
        for (a, b), value in penetration_fraction(scene, time, centres, config.interactions).items():
            fractions.setdefault(f"{a}-{b}", []).append(value)
    penetration = {k: sum(v) / len(v) for k, v in fractions.items()}
    gaps = {}
    for contact in setup.contacts:
        points, normals = setup.support[contact.object_id]
        samples = setup.samples[contact.object_id][contact.rows]
        values = []
        for f in contact.active.nonzero()[:, 0].tolist():
            lowest = object_points(scene, contact.object_id, samples, [f])[0]
            sd, _ = signed_distance(lowest, points, normals, config.interactions.sdf_neighbours)
            values.append(max(float(sd.min()), 0.0) / setup.extents[contact.object_id])
        gaps[str(contact.object_id)] = sum(values) / max(len(values), 1)
    drifts = {}
    for pair in setup.anchors:
        active = pair.active.nonzero()[:, 0].tolist()
        a = object_points(scene, pair.object_a, setup.samples[pair.object_a][pair.rows_a], [pair.start] + active)
        b = object_points(scene, pair.object_b, setup.samples[pair.object_b][pair.rows_b], [pair.start] + active)
        offsets = a - b
        scale = min(setup.extents[pair.object_a], setup.extents[pair.object_b])
        drifts[f"{pair.object_a}-{pair.object_b}"] = float(
            torch.linalg.norm(offsets[1:] - offsets[:1], dim=-1).mean()) / scale
    height, width = images.shape[1:3]
    rgb = [float(losses.rgb_l1(_render(scene, f, viewmats, Ks, width, height, config.backend), images[f:f + 1],
                               weights[f:f + 1])) for f in frames]
    return {"penetration": penetration, "max_penetration": max(penetration.values(), default=0.0),
            "contact_gap": gaps, "anchor_drift": drifts, "rgb_l1": sum(rgb) / max(len(rgb), 1)}


def refine_scene(scene: Scene, images: torch.Tensor, object_masks: torch.Tensor, viewmats: torch.Tensor,
                 Ks: torch.Tensor, config: RefineConfig, progress: bool = True,
                 fit_frames: list[int] | None = None) -> RefineResult:
    """Refine the visible objects' trajectories (see the module docstring); the input scene is not modified.

    Args:
        scene: the composed (placed) scene.
        images: (T, H, W, 3) input frames in [0, 1].
        object_masks: (T, H, W) bool, union of the objects' input masks.
        viewmats: (T, 4, 4) input cameras; Ks: (T, 3, 3).
        config: see :class:`RefineConfig`.
        progress: show a progress bar.
        fit_frames: the only frames the refinement and its metrics use (all by default).
    """
    num_frames, height, width = images.shape[:3]
    if object_masks.shape != (num_frames, height, width):
        raise ValueError(f"object_masks: expected {(num_frames, height, width)}, got {tuple(object_masks.shape)}")
    if viewmats.shape != (num_frames, 4, 4) or Ks.shape != (num_frames, 3, 3):
        raise ValueError(f"cameras: expected ({num_frames}, 4, 4) and ({num_frames}, 3, 3), got "
                         f"{tuple(viewmats.shape)} and {tuple(Ks.shape)}")
    background = None if scene.background is None else scene.background.to(scene.background.device)
    if background is not None:
        for param in background.params.values():
            param.requires_grad_(False)
    objects = [dataclasses.replace(o, model=copy.deepcopy(o.model)) for o in scene.objects]
    work = dataclasses.replace(scene, background=background, objects=objects)
    centres = torch.linalg.inv(viewmats)[:, :3, 3]
    setup = prepare_interactions(work, centres, config.interactions)
    weights = _dilate(object_masks, config.mask_dilation)[..., None]
    usable = torch.arange(num_frames) if fit_frames is None else torch.tensor(fit_frames, dtype=torch.long)
    if usable.numel() == 0:
        raise ValueError("refine: no frame left to fit")
    spread = torch.linspace(0, usable.numel() - 1, min(config.metric_frames, usable.numel())).round().long()
    metric_frames = sorted(set(usable[spread].tolist()))
    before = composition_metrics(work, setup, images, weights, viewmats, Ks, metric_frames, config)

    groups, start = [], {}
    for obj in objects:
        obj.model.requires_grad_(False)
        for param in obj.model.gaussians.params.values():
            param.requires_grad_(False)
        if not obj.visible or obj.object_id not in setup.extents:
            continue
        trajectory, extent = obj.model.trajectory, setup.extents[obj.object_id]
        params = [(trajectory.translation_knots, config.lr_translation * extent, extent),
                  (trajectory.rotation_knots, config.lr_rotation, 1.0)]
        if config.optimise_scale:
            params.append((trajectory.log_scale_knots, config.lr_scale, 1.0))
        for param, lr, unit in params:
            param.requires_grad_(True)
            groups.append({"params": [param], "lr": lr})
            start[param] = (param.detach().clone(), unit)
    history = []
    if groups and config.iterations > 0:
        optimizer = torch.optim.Adam(groups)
        # Linear decay to zero: Adam's steps do not shrink with the gradient, so without it the objects
        # overshoot the narrow band where both the contact and the penetration losses are zero.
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / config.iterations)
        generator = torch.Generator().manual_seed(config.seed)
        batch = min(config.frames_per_step, usable.numel())
        for step in tqdm(range(config.iterations), desc="refining composition", disable=not progress, leave=False):
            frames = usable[torch.randperm(usable.numel(), generator=generator)[:batch]].tolist()
            terms = interaction_losses(work, setup, frames, config.interactions)
            total = weighted_total(terms, config.interactions)
            if config.rgb > 0:
                pred = torch.cat([_render(work, f, viewmats, Ks, width, height, config.backend) for f in frames])
                terms["rgb"] = losses.rgb_l1(pred, images[frames], weights[frames])
                total = total + config.rgb * terms["rgb"]
            terms["prior"] = sum(((p - p0) / unit).square().mean() for p, (p0, unit) in start.items())
            total = total + config.prior * terms["prior"]
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            schedule.step()
            if step % 10 == 0 or step == config.iterations - 1:
                history.append({"step": step, "total": total.item(), **{k: v.item() for k, v in terms.items()}})
    for obj in objects:
        obj.model.requires_grad_(True)
        for param in obj.model.gaussians.params.values():
            param.requires_grad_(True)
    after = composition_metrics(work, setup, images, weights, viewmats, Ks, metric_frames, config)
    return RefineResult(dataclasses.replace(work, background=scene.background), before, after, history)
