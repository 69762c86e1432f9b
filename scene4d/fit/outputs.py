"""What one fitted object leaves on disk, and how well it matches its observations.

Layout of ``<run>/objects/<id>/`` (written into a temporary folder and moved into place in one step)::

    rig/                   the re-animatable rig (:mod:`scene4d.fit.rig`)
    fit.json               info, config, per-stage seconds, loss history and metrics (below)
    renders/frame_00000.png  per frame: input crop | render | absolute error heat map (a crop of one size
                           following the object)
    renders/alpha_00000.png  per frame: the rendered opacity, full frame, 8 bit
    trajectory.png         the object's world position over time (x, y, z against frame) and a top view
    losses.png             every named loss against the step, log scale, stage boundaries marked
    ply/frame_00000.ply    standard 3DGS PLY of the object in world coordinates at each frame

Metrics (``fit.json["metrics"]``, and :func:`evaluate_object`): the object is rendered through each frame's
camera over a black background, colours clamped to [0, 1].

- ``psnr``: PSNR (dB) over the pixels of the object's mask, capped at :data:`PSNR_CAP_DB` (an exact render
  would be infinite, which JSON cannot hold);
- ``psnr_interior``: the same over the mask's interior, the pixels at least :data:`INTERIOR_MARGIN` pixels
  from its outline, the image's edge excepted (None where there are none). Both frames of a thin object are mostly outline; the gap
  between the two says how much of the error is at the silhouette (misplaced limbs, soft edges) rather than
  in the colours inside;
- ``ssim``: mean SSIM map over the mask, both images composed over black outside the mask;
- ``iou``: IoU of the rendered opacity above :data:`ALPHA_THRESHOLD` against the mask, counting only pixels no
  other object covers (the object is rendered whole where something in front hides it).

Each is the mean over frames (frames with an empty mask count for ``iou`` only). ``train`` averages the frames
the fit looked at; ``hidden`` the frames it did not look at in which the object is visible (present only when
frames were held out).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import cv2
import numpy as np
import torch
from kornia.morphology import erosion
from matplotlib import colormaps
from matplotlib.figure import Figure

from scene4d.atomic import atomic_directory
from scene4d.conventions import normalized_time
from scene4d.dynamic_object import DynamicObject, PosedGaussians
from scene4d.fit.config import FitConfig
from scene4d.fit.fit_object import FitResult
from scene4d.fit.observations import ObjectObservations, object_windows
from scene4d.fit.rig import save_rig
from scene4d.gaussians import Gaussians
from scene4d.metrics.image import psnr, ssim
from scene4d.metrics.masks import mask_iou
from scene4d.ply import save_ply

PSNR_CAP_DB = 100.0
ALPHA_THRESHOLD = 0.5
ERROR_SATURATION = 0.25
"""Absolute error (mean over channels) shown at the top of the heat map's colour scale."""
CROP_MARGIN = 8
INTERIOR_MARGIN = 2
"""Pixels (Chebyshev distance) between a mask's outline and its interior, for ``psnr_interior``."""
OPACITY_EPS = 1e-6
"""Opacities are clamped to [eps, 1 - eps] before the logit so that saturated ones stay finite."""


def _check_frames(observations: ObjectObservations, frames: torch.Tensor) -> torch.Tensor:
    frames = torch.as_tensor(frames, dtype=torch.long)
    if frames.ndim != 1:
        raise ValueError(f"frames: expected (F,) frame indices, got shape {tuple(frames.shape)}")
    if frames.numel() and (frames.min() < 0 or frames.max() >= observations.num_frames):
        raise ValueError(f"frames: indices must lie in [0, {observations.num_frames}), got {frames.tolist()}")
    return frames


@torch.no_grad()
def render_frames(model: DynamicObject, observations: ObjectObservations, frames: torch.Tensor,
                  backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """The object rendered through the cameras of ``frames`` (F,) over black.

    Returns:
        ``(colors, alphas)``: (F, H, W, 3) clamped to [0, 1] and (F, H, W) opacity.
    """
    frames = _check_frames(observations, frames)
    width, height = observations.size
    colors, alphas = [], []
    for frame in frames.tolist():
        time = normalized_time(torch.tensor([frame]), observations.num_frames)
        out = model.render(time, observations.viewmats[frame:frame + 1], observations.Ks[frame:frame + 1],
                           width, height, torch.zeros(1, 3), backend=backend)[0]
        colors.append(out.colors[0].clamp(0.0, 1.0))
        alphas.append(out.alphas[0, ..., 0])
    if not colors:
        return torch.zeros(0, height, width, 3), torch.zeros(0, height, width)
    return torch.stack(colors), torch.stack(alphas)


def frame_metrics(colors: torch.Tensor, alphas: torch.Tensor, observations: ObjectObservations,
                  frames: torch.Tensor) -> list[dict]:
    """Per-frame ``{"frame", "mask_pixels", "psnr", "psnr_interior", "ssim", "iou"}`` (see the module docstring).

    Args:
        colors: (F, H, W, 3) renders in [0, 1]; alphas: (F, H, W) rendered opacity.
        frames: (F,) the frames they show.

    ``psnr``, ``psnr_interior`` and ``ssim`` are None where the mask (or its interior) is empty.
    """
    frames = _check_frames(observations, frames)
    if colors.shape[0] != frames.numel() or alphas.shape != colors.shape[:3]:
        raise ValueError(f"colors {tuple(colors.shape)} and alphas {tuple(alphas.shape)} do not match "
                         f"{frames.numel()} frames")
    rows = []
    interiors = mask_interior(observations.masks[frames, ..., 0] > 0.5, INTERIOR_MARGIN)
    for colour, alpha, frame, interior in zip(colors, alphas, frames.tolist(), interiors):
        mask = observations.masks[frame, ..., 0] > 0.5
        valid = observations.valid[frame, ..., 0] > 0.5
        image = observations.images[frame]
        row = {"frame": frame, "mask_pixels": int(mask.sum()), "psnr": None, "psnr_interior": None, "ssim": None,
               "iou": float(mask_iou((alpha > ALPHA_THRESHOLD) & valid, mask & valid))}
        if mask.any():
            row["psnr"] = min(float(psnr(colour, image, mask)), PSNR_CAP_DB)
            if interior.any():
                row["psnr_interior"] = min(float(psnr(colour, image, interior)), PSNR_CAP_DB)
            inside = mask[..., None].float()
            row["ssim"] = float(ssim(colour * inside, image * inside, mask))
        rows.append(row)
    return rows


def mask_interior(masks: torch.Tensor, margin: int) -> torch.Tensor:
    """``masks`` (F, H, W) bool eroded by ``margin`` pixels (a square of side ``2 margin + 1``), (F, H, W) bool.

    The image's edge is not an outline: an object the frame cuts off keeps its pixels along the edge.
    """
    kernel = torch.ones(2 * margin + 1, 2 * margin + 1)
    return erosion(masks.float()[:, None], kernel, border_type="geodesic")[:, 0] > 0.5


def summarize(rows: list[dict]) -> dict:
    """Mean ``psnr``, ``psnr_interior``, ``ssim`` and ``iou`` over per-frame rows (None where no frame has a
    value), and the frames."""
    summary = {"frames": [row["frame"] for row in rows]}
    for key in ("psnr", "psnr_interior", "ssim", "iou"):
        values = [row[key] for row in rows if row[key] is not None]
        summary[key] = float(np.mean(values)) if values else None
    return summary


def hidden_frames(observations: ObjectObservations) -> torch.Tensor:
    """(F,) frames the fit did not look at in which the object's mask is not empty."""
    seen = torch.zeros(observations.num_frames, dtype=torch.bool)
    seen[observations.train_frames] = True
    visible = observations.masks.flatten(1).amax(1) > 0.5
    return torch.nonzero(~seen & visible)[:, 0]


def evaluate_object(model: DynamicObject, observations: ObjectObservations, frames: torch.Tensor,
                    backend: str = "auto") -> dict:
    """PSNR and SSIM inside the mask and alpha IoU of ``model`` on ``frames`` (F,).

    Returns:
        ``{"frames", "psnr", "ssim", "iou", "per_frame"}``: means over the frames (module docstring) and the
        rows of :func:`frame_metrics`.
    """
    frames = _check_frames(observations, frames)
    colors, alphas = render_frames(model, observations, frames, backend)
    rows = frame_metrics(colors, alphas, observations, frames)
    return {**summarize(rows), "per_frame": rows}


def posed_to_gaussians(posed: PosedGaussians, index: int) -> Gaussians:
    """Plain (raw-parameter) Gaussians of one time of ``posed``: log scales, opacity logits, SH split."""
    opacities = posed.opacities.detach().clamp(OPACITY_EPS, 1.0 - OPACITY_EPS)
    colors = posed.colors.detach()
    return Gaussians({
        "means": posed.means[index].detach().clone(),
        "quats": posed.quats[index].detach().clone(),
        "scales": posed.scales[index].detach().log(),
        "opacities": torch.logit(opacities),
        "sh0": colors[:, :1].clone(),
        "shN": colors[:, 1:].clone(),
    })


def crop_boxes(masks: torch.Tensor, alphas: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """Per frame ``(top, bottom, left, right)``: windows of one size around the mask or rendered silhouette
    (:func:`~scene4d.fit.observations.object_windows`, :data:`CROP_MARGIN` pixels of margin).

    Args:
        masks: (T, H, W, 1); alphas: (T, H, W).
    """
    return object_windows((masks[..., 0] > 0.5) | (alphas > ALPHA_THRESHOLD), CROP_MARGIN)


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    return (image.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).numpy()


def _write_png(path: Path, rgb: np.ndarray) -> None:
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")


def _write_renders(folder: Path, observations: ObjectObservations, colors: torch.Tensor,
                   alphas: torch.Tensor) -> None:
    folder.mkdir()
    boxes = crop_boxes(observations.masks, alphas)
    heat = colormaps["inferno"]
    for frame, (top, bottom, left, right) in enumerate(boxes):
        image = observations.images[frame]
        inside = observations.masks[frame]
        error = (colors[frame] - image * inside).abs().mean(-1) / ERROR_SATURATION
        heat_map = torch.from_numpy(heat(error.clamp(0.0, 1.0).numpy())[..., :3]).float()
        panels = [p[top:bottom, left:right] for p in (image, colors[frame], heat_map)]
        _write_png(folder / f"frame_{frame:05d}.png", _to_uint8(torch.cat(panels, dim=1)))
        _write_png(folder / f"alpha_{frame:05d}.png", _to_uint8(alphas[frame]))


def _plot_trajectory(path: Path, model: DynamicObject, observations: ObjectObservations) -> None:
    num_frames = observations.num_frames
    dense_frames = torch.linspace(0, num_frames - 1, max(20 * num_frames, 2))
    with torch.no_grad():
        dense = model.trajectory.transform(normalized_time(dense_frames, num_frames))[2].numpy()
        at_frames = model.trajectory.transform(normalized_time(torch.arange(num_frames), num_frames))[2].numpy()
    cameras = torch.linalg.inv(observations.viewmats)[:, :3, 3].numpy()
    train = np.zeros(num_frames, bool)
    train[observations.train_frames.numpy()] = True
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    axes = figure.subplots(1, 2, width_ratios=(1.4, 1))
    for axis, name, colour in zip(range(3), "xyz", ("tab:red", "tab:green", "tab:blue")):
        axes[0].plot(dense_frames.numpy(), dense[:, axis], color=colour, label=name)
        axes[0].plot(np.flatnonzero(train), at_frames[train, axis], "o", color=colour, markersize=4)
        axes[0].plot(np.flatnonzero(~train), at_frames[~train, axis], "o", color=colour, markersize=5,
                     markerfacecolor="white")
    axes[0].set(xlabel="frame", ylabel="world position", title="object position (filled: fitted, hollow: not seen)")
    axes[0].legend()
    axes[1].plot(dense[:, 0], dense[:, 2], color="black", label="object")
    points = axes[1].scatter(at_frames[:, 0], at_frames[:, 2], c=np.arange(num_frames), cmap="viridis", zorder=3)
    axes[1].plot(cameras[:, 0], cameras[:, 2], "s", color="grey", markersize=3, label="camera")
    axes[1].set(xlabel="x", ylabel="z", title="top view (x, z)")
    axes[1].set_aspect("equal", adjustable="datalim")
    axes[1].legend()
    figure.colorbar(points, ax=axes[1], label="frame")
    figure.savefig(path, dpi=100)


def _plot_losses(path: Path, history: list[dict]) -> None:
    figure = Figure(figsize=(9, 5), layout="constrained")
    axis = figure.subplots()
    offsets, offset = {}, 0
    for stage in dict.fromkeys(row["stage"] for row in history):
        offsets[stage] = offset
        offset += max(row["step"] for row in history if row["stage"] == stage) + 1
    names = sorted({k for row in history for k in row} - {"stage", "step", "gaussians"})
    for name in names:
        steps = [offsets[r["stage"]] + r["step"] for r in history if name in r]
        values = np.array([r[name] for r in history if name in r], dtype=float)
        axis.plot(steps, np.where(values > 0, values, np.nan), label=name, linewidth=2.5 if name == "total" else 1.2,
                  color="black" if name == "total" else None)
    for stage, start in offsets.items():
        axis.axvline(start, color="grey", linestyle="--", linewidth=0.8)
        axis.annotate(stage, (start, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                      textcoords="offset points", color="grey")
    axis.set(yscale="log", xlabel="step", ylabel="loss (unweighted)", title="losses")
    if names:
        axis.legend(fontsize="small", ncols=2)
    figure.savefig(path, dpi=100)


def _finite(value):
    """JSON-safe: non-finite floats become None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_object_outputs(result: FitResult, observations: ObjectObservations, folder: str | Path, info: dict,
                         config: FitConfig | None = None) -> dict:
    """Write the layout of the module docstring for one fitted object, replacing ``folder`` atomically.

    Args:
        result: the fit.
        observations: what it was fitted to (hidden frames included).
        folder: ``<run>/objects/<id>``.
        info: facts for rig.json and fit.json (object id, name, ...); the frame count, reference frame and
            extent are added from ``result`` unless given.
        config: the fit's settings, recorded in fit.json and deciding the render backend (``auto`` when None).

    Returns:
        The contents of fit.json.
    """
    model, num_frames = result.model, observations.num_frames
    backend = config.backend if config is not None else "auto"
    info = {"num_frames": num_frames, "reference_frame": result.init.reference_frame,
            "extent": result.init.extent, **info}
    all_frames = torch.arange(num_frames)
    colors, alphas = render_frames(model, observations, all_frames, backend)
    rows = frame_metrics(colors, alphas, observations, all_frames)
    train, hidden = set(observations.train_frames.tolist()), set(hidden_frames(observations).tolist())
    metrics = {"train": summarize([r for r in rows if r["frame"] in train])}
    if hidden:
        metrics["hidden"] = summarize([r for r in rows if r["frame"] in hidden])
    metrics["per_frame"] = [{**r, "seen": r["frame"] in train} for r in rows]
    fit = _finite({
        "info": info,
        "num_gaussians": model.gaussians.num_gaussians,
        "config": dataclasses.asdict(config) if config is not None else None,
        "stage_seconds": result.stage_seconds,
        "metrics": metrics,
        "history": result.history,
    })
    with atomic_directory(folder) as tmp:
        save_rig(model, tmp / "rig", info)
        (tmp / "fit.json").write_text(json.dumps(fit, indent=2) + "\n")
        _write_renders(tmp / "renders", observations, colors, alphas)
        _plot_trajectory(tmp / "trajectory.png", model, observations)
        _plot_losses(tmp / "losses.png", result.history)
        with torch.no_grad():
            posed = model.posed(normalized_time(all_frames, num_frames))
        for frame in range(num_frames):
            save_ply(tmp / "ply" / f"frame_{frame:05d}.ply", posed_to_gaussians(posed, frame))
    return fit
