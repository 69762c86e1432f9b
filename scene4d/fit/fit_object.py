"""The staged optimisation of one object's 4D Gaussians.

1. static: the canonical shape on the reference frame (no deformation), with densification;
2. motion: trajectory and deformation over all training frames, shape frozen;
3. joint: everything together.
The loss is a weighted sum of the named functions in :mod:`scene4d.losses` (weights in :class:`FitConfig`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from gsplat.strategy import DefaultStrategy
from tqdm import tqdm

from scene4d import losses
from scene4d.conventions import normalized_time, project_points
from scene4d.densify import Densifier, make_optimizers
from scene4d.dynamic_object import Deformation, DynamicObject
from scene4d.fit.config import FitConfig
from scene4d.fit.init import Initialisation, initialise
from scene4d.fit.novel_view_guidance import NovelViewGuidance
from scene4d.fit.observations import ObjectObservations, object_windows
from scene4d.guidance.guidance import Guidance
from scene4d.motion.hexplane import HexPlaneDeformation

GAUSSIAN_LRS = {"scales": 5e-3, "quats": 1e-3, "opacities": 5e-2, "sh0": 2.5e-3, "shN": 2.5e-3 / 20}
JOINT_LR_FACTOR = 0.3
WINDOW_MIN_MARGIN = 8


@dataclass
class FitResult:
    """A fitted object.

    Attributes:
        model: the fitted 4D model.
        init: the initialisation it started from (reference frame, extent, track anchors).
        history: logged rows ``{"stage", "step", "total", <loss name>: value, "gaussians"}``.
        stage_seconds: wall time of each stage.
    """

    model: DynamicObject
    init: Initialisation
    history: list[dict] = field(default_factory=list)
    stage_seconds: dict = field(default_factory=dict)


def _motion_optimizer(model: DynamicObject, config: FitConfig, extent: float, factor: float = 1.0) -> torch.optim.Adam:
    lr = config.lr_motion * factor
    t = model.trajectory
    return torch.optim.Adam([
        {"params": [t.rotation_knots, t.log_scale_knots], "lr": lr},
        {"params": [t.translation_knots], "lr": lr * extent},
        *_deformation_groups(model.deformation, config, extent, factor),
    ])


def _deformation_groups(deformation: Deformation, config: FitConfig, extent: float, factor: float) -> list[dict]:
    """Optimiser parameter groups of the deformation, by its kind."""
    if isinstance(deformation, HexPlaneDeformation):
        return [{"params": list(deformation.parameters()), "lr": config.lr_hexplane * factor}]
    lr = config.lr_motion * factor
    return [{"params": [deformation.rotation_knots, deformation.log_radii], "lr": lr},
            {"params": [deformation.translation_knots], "lr": lr * extent},
            {"params": [deformation.control_points], "lr": 0.1 * lr * extent}]


def _batch_losses(model: DynamicObject, obs: ObjectObservations, init: Initialisation, frames: torch.Tensor,
                  config: FitConfig, generator: torch.Generator, deform: bool, motion_terms: bool) -> tuple[dict, list]:
    """Named (unweighted) losses over a batch of frames, and the render outputs."""
    width, height = obs.size
    times = normalized_time(frames, obs.num_frames)
    backgrounds = torch.rand(frames.shape[0], 3, generator=generator)
    outputs = model.render(times, obs.viewmats[frames], obs.Ks[frames], width, height, backgrounds,
                           deform=deform, backend=config.backend)
    pred = torch.cat([o.colors for o in outputs])
    alpha = torch.cat([o.alphas for o in outputs])
    depth = torch.cat([o.depths for o in outputs])
    mask, valid = obs.masks[frames], obs.valid[frames]
    target = obs.images[frames] * mask + backgrounds[:, None, None, :] * (1.0 - mask)
    terms = {
        "rgb": losses.rgb_l1(pred, target, valid),
        "dssim": losses.dssim(pred, target, valid),
        "mask": losses.mask_loss(alpha, mask, valid),
        "depth": losses.depth_scale_shift_invariant(depth, obs.depth[frames], obs.depth_weights[frames] * valid),
        "anisotropy": losses.scale_anisotropy(model.gaussians.get_scales()),
    }
    if motion_terms:
        terms.update(_motion_priors(model, times, normalized_time(torch.arange(obs.num_frames), obs.num_frames),
                                    init.extent))
        if init.track_rows.numel():
            terms["tracks"] = _track_loss(model, obs, init, frames, times)
    return terms, outputs


def _motion_priors(model: DynamicObject, times: torch.Tensor, all_times: torch.Tensor, extent: float) -> dict:
    """Named rigidity and smoothness priors on the motion at the batch's ``times`` and every frame's ``all_times``."""
    scale2 = extent**2
    deformation = model.deformation
    trajectory = model.trajectory.transform(all_times)[2][:, None, :]
    if isinstance(deformation, HexPlaneDeformation):
        return {"smoothness": losses.temporal_smoothness(trajectory) / scale2,
                "plane_tv": losses.plane_total_variation(deformation.space_planes, deformation.time_planes),
                "plane_time": losses.plane_time_smoothness(deformation.time_planes)}
    rotations, _, _ = deformation.transforms(times)
    neighbours = losses.knn_indices(deformation.control_points, 6)
    sampled = torch.cat([trajectory, deformation.deformed_control_points(all_times)], dim=1)
    return {"arap": losses.arap(deformation.control_points, deformation.deformed_control_points(times), rotations,
                                neighbours) / scale2,
            "smoothness": losses.temporal_smoothness(sampled) / scale2}


def _track_loss(model, obs, init, frames, times) -> torch.Tensor:
    anchors = init.track_anchors
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(anchors.shape[0], 4)
    moved, moved_q = model.deformation(anchors, identity, times)
    world, _, _ = model.trajectory(moved, moved_q, torch.ones_like(anchors), times)
    projected = torch.stack([project_points(world[b], obs.viewmats[f][None], obs.Ks[f][None])[0][0]
                             for b, f in enumerate(frames.tolist())])
    observed = obs.tracks[init.track_rows][:, frames].transpose(0, 1)
    visible = obs.track_visibility[init.track_rows][:, frames].transpose(0, 1)
    return losses.track_reprojection(projected, observed, visible)


def _total(terms: dict, config: FitConfig) -> torch.Tensor:
    return sum(getattr(config.weights, name) * value for name, value in terms.items())


def _densifier(config: FitConfig, iterations: int) -> Densifier:
    return Densifier(DefaultStrategy(
        refine_start_iter=max(iterations // 10, 1), refine_stop_iter=int(iterations * 0.7),
        refine_every=max(iterations // 10, 1), reset_every=10**9, verbose=False))


def fit_object(observations: ObjectObservations, config: FitConfig, progress: bool = True,
               guidance: Guidance | None = None) -> FitResult:
    """Fit one object's 4D Gaussians to its observations (see module docstring for the stages).

    Args:
        observations: the object's frames, masks, depth, cameras and tracks.
        config: stages, losses and their weights.
        progress: show a progress bar.
        guidance: optional score-distillation model; its SDS loss on novel views joins the motion and joint
            stages (see :mod:`scene4d.fit.novel_view_guidance`).
    """
    if config.window_margin >= 0:
        windows = object_windows(observations.masks[..., 0] > 0.5, WINDOW_MIN_MARGIN, config.window_margin)
        observations = observations.cropped(windows)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    init = initialise(observations, config)
    model = init.model
    novel_views = None if guidance is None else NovelViewGuidance(guidance, observations, init.reference_frame,
                                                                   init.extent)
    result = FitResult(model=model, init=init)
    total_steps = config.static_iters + config.motion_iters + config.joint_iters
    bar = tqdm(total=total_steps, desc="fitting object", unit="it", disable=not progress, leave=False)
    train = observations.train_frames

    def run_stage(name: str, iterations: int, gaussian_factor: float | None, motion_factor: float | None,
                  frames_fn, deform: bool, motion_terms: bool) -> None:
        if iterations <= 0:
            return
        start = time.perf_counter()
        for param in model.gaussians.params.values():
            param.requires_grad_(gaussian_factor is not None)
        model.requires_grad_(motion_factor is not None)
        gaussian_opts = None
        if gaussian_factor is not None:
            lrs = {name_: lr * gaussian_factor for name_, lr in GAUSSIAN_LRS.items()}
            lrs["means"] = config.lr_means * init.extent * gaussian_factor
            gaussian_opts = make_optimizers(model.gaussians, lrs)
        motion_opt = _motion_optimizer(model, config, init.extent, motion_factor) if motion_factor else None
        densifier = _densifier(config, iterations) if (config.densify and gaussian_opts) else None
        state = densifier.initialize_state(scene_scale=init.extent) if densifier else None
        for step in range(iterations):
            frames = frames_fn()
            terms, outputs = _batch_losses(model, observations, init, frames, config, generator, deform, motion_terms)
            loss = _total(terms, config)
            sds = novel_views.loss(model, step, generator) if (novel_views and motion_terms) else None
            if sds is not None:
                terms["sds"] = sds.detach()
                loss = loss + sds
            if densifier:
                for output in outputs:
                    densifier.step_pre_backward(model.gaussians, gaussian_opts, state, step, output.info)
            loss.backward()
            for opt in ([*gaussian_opts.values()] if gaussian_opts else []) + ([motion_opt] if motion_opt else []):
                opt.step()
                opt.zero_grad(set_to_none=True)
            if densifier and model.gaussians.num_gaussians < config.max_gaussians:
                densifier.step_post_backward(model.gaussians, gaussian_opts, state, step, _merge_infos(outputs))
            if step % 10 == 0 or step == iterations - 1:
                row = {"stage": name, "step": step, "total": loss.item(), "gaussians": model.gaussians.num_gaussians}
                row.update({k: v.item() for k, v in terms.items()})
                result.history.append(row)
                bar.set_postfix(stage=name, loss=f"{loss.item():.4f}", n=model.gaussians.num_gaussians)
            bar.update(1)
        result.stage_seconds[name] = time.perf_counter() - start

    ref = torch.tensor([init.reference_frame])
    batch = min(config.frames_per_step, train.numel())
    sample = lambda: train[torch.randperm(train.numel(), generator=generator)[:batch]]  # noqa: E731
    run_stage("static", config.static_iters, 1.0, None, lambda: ref, deform=False, motion_terms=False)
    run_stage("motion", config.motion_iters, None, 1.0, sample, deform=True, motion_terms=True)
    run_stage("joint", config.joint_iters, JOINT_LR_FACTOR, JOINT_LR_FACTOR, sample, deform=True, motion_terms=True)
    bar.close()
    for param in model.gaussians.params.values():
        param.requires_grad_(True)
    model.requires_grad_(True)
    return result


def _merge_infos(outputs: list) -> dict:
    """One densification ``info`` for several single-camera renders (as if they were C cameras)."""
    if len(outputs) == 1:
        return outputs[0].info
    means2d = torch.cat([o.info["means2d"].detach() for o in outputs])
    means2d.grad = torch.cat([o.info["means2d"].grad for o in outputs])
    first = outputs[0].info
    return {**first, "means2d": means2d, "radii": torch.cat([o.info["radii"] for o in outputs]),
            "n_cameras": len(outputs)}
