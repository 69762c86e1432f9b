"""End-to-end quality of the whole pipeline on real clips with ground-truth masks (the harness's ``scene`` section).

    python benchmarks/scene_bench.py                                        # default preset, the three ds4d clips
    python benchmarks/scene_bench.py --clips ds4d_stroller --preset quick --long-side 128
    python benchmarks/scene_bench.py --set fit.static_iters=50 --json scene.json

Per clip, :func:`compose.runner.run_pipeline` runs every stage, decode to export (what ``python run.py --video
<clip>/frames --masks <clip>/masks`` runs), into a run directory, with every 4th frame hidden from the object fits
(``holdout_every=4``: frames 3, 7, 11, ...). A finished run is resumed, not redone. Then, from the run directory:

- composed scene (objects and background) rendered through the input cameras against the input frames: PSNR,
  SSIM and LPIPS(alex) over the whole frame, and inside the union of the object masks (both images black outside
  it; LPIPS on the mask's bounding box, at least 32 px a side), on fitted and on hidden frames separately;
- per object on the hidden (and fitted) frames: IoU of its rendered alpha (> 0.5) against its mask, counting
  pixels no other object covers (as :mod:`scene4d.fit.outputs` does);
- novel views, DreamScene4D's protocol: LPIPS between each input frame and the scene rendered at that frame's
  time from the input camera turned by (elevation, azimuth) = (0, +45), (0, -45), (+45, 0), (-45, 0) degrees
  about the objects' median Gaussian (:func:`compose.camera_paths.evaluation_views`), averaged over frames;
  also the objects alone over black against the frame black outside the object masks;
- point tracks: each object's input 2D tracks (``tracks/``, the tracks stage's estimate, not ground truth)
  visible in the object's reference frame are lifted at the rendered depth of the object there, attached to the
  nearest of its Gaussians, and that Gaussian is followed through time; EPE in pixels on the other visible
  frames, fitted and hidden apart, and for scale the EPE of a point that stays where it was attached;
- remaining penetration: :func:`compose.interactions.penetration_fraction` (the refine step's metric) on every
  frame, the largest per-pair mean, with the background (an object sunk behind its surface) and between objects;
- wall time, peak resident memory and backend of each stage, from ``manifest.json``.

Which stages see the hidden frames: no stage that fits to the frames does. The object fits keep them out of
their training frames (initialisation, losses and tracks use those only; checked here against each object's
``fit.json``), the background is filled, lifted and fitted on the other frames only, and the compose stage's
placement and refinement read the other frames only. The preprocessing does see them: masks are given for all
frames, and tracks, cameras and depth are estimated on all frames (the fits read those on fitted frames only).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import markdown_table, stage_table  # noqa: E402
from benchmarks.synthetic_eval import object_trajectories  # noqa: E402
from compose.camera_paths import EVALUATION_ANGLES, CameraPath, evaluation_views, world_up  # noqa: E402
from compose.interactions import InteractionConfig, penetration_fraction  # noqa: E402
from compose.novel_views import scene_center  # noqa: E402
from compose.pipeline import STAGES, PipelineConfig, PipelineInputs  # noqa: E402
from compose.runner import run_pipeline  # noqa: E402
from compose.scene import Scene  # noqa: E402
from compose.scene_io import load_scene  # noqa: E402
from scene4d.config_loading import load_config  # noqa: E402
from scene4d.contracts.cameras import Cameras  # noqa: E402
from scene4d.contracts.frames import Frames  # noqa: E402
from scene4d.contracts.masks import ObjectMasks  # noqa: E402
from scene4d.contracts.tracks import PointTracks  # noqa: E402
from scene4d.conventions import normalized_time, project_points  # noqa: E402
from scene4d.fit.outputs import ALPHA_THRESHOLD, PSNR_CAP_DB  # noqa: E402
from scene4d.holdout import fitted_frames, hidden_frames  # noqa: E402
from scene4d.metrics.image import psnr, ssim  # noqa: E402
from scene4d.metrics.lpips import MIN_SIZE, LPIPSAlex, load_lpips_alex, lpips  # noqa: E402
from scene4d.metrics.masks import mask_iou  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
CLIPS = ("ds4d_kid-football", "ds4d_stroller", "ds4d_rollerblade")
HOLDOUT_EVERY = 4
DREAMSCENE4D_LPIPS = 0.152  # their novel-view LPIPS on DAVIS
SEEN_BY = ("masks (given)", "tracks", "cameras", "depth")
ABOUT = ("Every stage of the pipeline on the clip, ground-truth masks given, every 4th frame hidden from the "
         "object fits (`benchmarks/scene_bench.py`). Composed scene through the input cameras against the input "
         "frames, on fitted (`fit`) and hidden (`hid`) frames, whole frame and inside the union of the object "
         "masks (`mask`: both black outside, LPIPS on the mask's box). Hidden frames are held out of every fit "
         "(objects, background, placement, trajectory refinement); only the preprocessing sees them. "
         "Object IoU: rendered alpha against each mask on hidden frames. Novel LPIPS: DreamScene4D's protocol "
         f"(input view vs renders at (el, az) = {', '.join(f'({e:+.0f}, {a:+.0f})' for e, a in EVALUATION_ANGLES)} "
         f"degrees about the objects' centre, per view in that order; they report {DREAMSCENE4D_LPIPS} on DAVIS), "
         "whole scene and objects alone. Track EPE: Gaussians attached to the input tracks (the tracks stage's "
         "estimate) in the reference frame and followed, px; `still`: points left where they were attached. "
         "Penetration: the refine step's metric on every frame, the largest pair, background (objects sunk behind "
         "its surface) included, and between objects only.")
TABLES = [
    [["clip", "clip", None], ["frames", "frames", None], ["size", "size", None],
     ["psnr_fitted", "PSNR fit", 2], ["ssim_fitted", "SSIM fit", 3], ["lpips_fitted", "LPIPS fit", 3],
     ["psnr_hidden", "PSNR hid", 2], ["ssim_hidden", "SSIM hid", 3], ["lpips_hidden", "LPIPS hid", 3],
     ["psnr_mask_fitted", "mask PSNR fit", 2], ["ssim_mask_fitted", "mask SSIM fit", 3],
     ["lpips_mask_fitted", "mask LPIPS fit", 3], ["psnr_mask_hidden", "mask PSNR hid", 2],
     ["ssim_mask_hidden", "mask SSIM hid", 3], ["lpips_mask_hidden", "mask LPIPS hid", 3]],
    [["clip", "clip", None], ["objects", "objects", None], ["object_iou_hidden", "hidden IoU", 3],
     ["novel_lpips", "novel LPIPS", 3], ["novel_lpips_views", "per view", 3],
     ["novel_lpips_objects", "novel LPIPS objects", 3], ["track_epe_fitted_px", "EPE fit px", 2],
     ["track_epe_hidden_px", "EPE hid px", 2], ["track_epe_still_px", "EPE still px", 2],
     ["track_points", "track points", 0], ["penetration", "penetration", 3],
     ["penetration_objects", "between objects", 3],
     ["total_s", "total s", 1], ["peak_rss_mb", "peak RSS MiB", 0]],
]


def pipeline_config(preset: str | None, long_side: int, overrides: list[str]) -> PipelineConfig:
    """The preset's config with every 4th frame hidden, ``video.long_side`` set unless 0, then ``overrides``."""
    size = [f"video.long_side={long_side}"] if long_side else []
    return load_config(PipelineConfig, ROOT / "configs", preset,
                       [f"holdout_every={HOLDOUT_EVERY}", *size, *overrides])


def _times(num_frames: int) -> list[float]:
    return [float(normalized_time(f, num_frames)) for f in range(num_frames)]


def _cameras(cameras: Cameras) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(cameras.viewmats).float(), torch.from_numpy(cameras.Ks).float()


@torch.no_grad()
def render_inputs(scene: Scene, cameras: Cameras, backend: str = "auto", **select) -> tuple[torch.Tensor, torch.Tensor]:
    """The scene at each input frame's time through that frame's camera, over black.

    Args:
        select: ``include_background`` / ``object_ids`` as in :meth:`compose.scene.Scene.posed`.

    Returns:
        ``(colors, alphas)``: (T, H, W, 3) in [0, 1] and (T, H, W).
    """
    viewmats, Ks = _cameras(cameras)
    outputs = [scene.render(t, viewmats[f:f + 1], Ks[f:f + 1], cameras.width, cameras.height, backend=backend,
                            **select)[0] for f, t in enumerate(_times(cameras.num_frames))]
    return (torch.cat([o.colors for o in outputs]).clamp(0.0, 1.0),
            torch.cat([o.alphas for o in outputs])[..., 0])


def _box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of a non-empty (H, W) mask, grown about its centre to at least
    :data:`MIN_SIZE` a side (LPIPS's smallest input) and kept inside the image."""
    height, width = mask.shape
    rows, cols = torch.nonzero(mask.any(1))[:, 0], torch.nonzero(mask.any(0))[:, 0]
    spans = []
    for first, last, size in ((int(rows[0]), int(rows[-1]) + 1, height), (int(cols[0]), int(cols[-1]) + 1, width)):
        extent = min(max(last - first, MIN_SIZE), size)
        start = min(max((first + last - extent) // 2, 0), size - extent)
        spans += [start, start + extent]
    return tuple(spans)


def masked_lpips(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, model: LPIPSAlex) -> torch.Tensor:
    """LPIPS inside a mask: both images black outside it, compared on the mask's bounding box (:func:`_box`).

    Args:
        pred, target: (B, H, W, 3) in [0, 1], H and W at least 32; mask: (B, H, W) bool.

    Returns:
        (B,); NaN where the mask is empty.
    """
    scores = []
    for p, t, m in zip(pred, target, mask):
        if not m.any():
            scores.append(pred.new_tensor(float("nan")))
            continue
        top, bottom, left, right = _box(m)
        keep = m[top:bottom, left:right, None]
        scores.append(lpips(p[top:bottom, left:right] * keep, t[top:bottom, left:right] * keep, model))
    return torch.stack(scores)


def image_scores(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, model: LPIPSAlex
                 ) -> dict[str, torch.Tensor]:
    """Per-image fidelity over the whole frame and inside ``mask``.

    Args:
        pred, target: (B, H, W, 3) in [0, 1]; mask: (B, H, W) bool.

    Returns:
        ``psnr`` (capped at :data:`PSNR_CAP_DB`), ``ssim``, ``lpips`` and the same inside the mask (``*_mask``,
        both images black outside it), (B,) each; NaN inside an empty mask.
    """
    inside = lambda images: images * mask[..., None]  # noqa: E731
    return {"psnr": psnr(pred, target).clamp(max=PSNR_CAP_DB), "ssim": ssim(pred, target),
            "lpips": lpips(pred, target, model),
            "psnr_mask": psnr(pred, target, mask).clamp(max=PSNR_CAP_DB),
            "ssim_mask": ssim(inside(pred), inside(target), mask),
            "lpips_mask": masked_lpips(pred, target, mask, model)}


def object_ious(scene: Scene, cameras: Cameras, masks: ObjectMasks, backend: str = "auto") -> dict[int, torch.Tensor]:
    """Per object and input frame, IoU of its rendered alpha (> :data:`ALPHA_THRESHOLD`, the object alone)
    against its mask, on the pixels no other object's mask covers.

    Returns:
        ``{object_id: (T,)}`` for the scene's visible objects that have masks.
    """
    ious = {}
    for obj in scene.objects:
        if not obj.visible or obj.object_id not in masks.object_ids:
            continue
        own = torch.from_numpy(masks.of(obj.object_id))
        others = torch.from_numpy(masks.union()) & ~own
        _, alphas = render_inputs(scene, cameras, backend, include_background=False, object_ids=[obj.object_id])
        ious[obj.object_id] = mask_iou((alphas > ALPHA_THRESHOLD) & ~others, own & ~others)
    return ious


def novel_view_cameras(scene: Scene, cameras: Cameras, frame: int,
                       angles: tuple[tuple[float, float], ...] = EVALUATION_ANGLES) -> CameraPath:
    """The input camera of ``frame`` turned by each (elevation, azimuth) of ``angles`` about the objects' median
    Gaussian at that frame's time (:func:`compose.novel_views.scene_center`), up from the input cameras."""
    viewmats, Ks = _cameras(cameras)
    time = float(normalized_time(frame, cameras.num_frames))
    return evaluation_views(viewmats[frame], Ks[frame], scene_center(scene, time), world_up(viewmats), time, angles)


def _render_views(scene: Scene, path: CameraPath, cameras: Cameras, backend: str, **select) -> torch.Tensor:
    """(V, H, W, 3) the scene at the path's (single) time through its V cameras, over black."""
    out, _ = scene.render(float(path.times[0]), path.viewmats, path.Ks, cameras.width, cameras.height,
                          backend=backend, **select)
    return out.colors.clamp(0.0, 1.0)


@torch.no_grad()
def novel_view_lpips(scene: Scene, cameras: Cameras, images: torch.Tensor, union: torch.Tensor, model: LPIPSAlex,
                     angles: tuple[tuple[float, float], ...] = EVALUATION_ANGLES, backend: str = "auto"
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """LPIPS between each input frame and the scene seen from :func:`novel_view_cameras` at that frame.

    Args:
        images: (T, H, W, 3) input frames in [0, 1]; union: (T, H, W) bool union of the object masks.

    Returns:
        ``(whole, objects)``: (T, V) for the whole scene over black against the frame, and for the objects alone
        over black against the frame black outside ``union`` (None without a visible object).
    """
    has_objects = any(obj.visible for obj in scene.objects)
    whole, objects = [], []
    for frame in range(cameras.num_frames):
        path = novel_view_cameras(scene, cameras, frame, angles)
        count = path.times.shape[0]
        whole.append(lpips(_render_views(scene, path, cameras, backend), images[frame].expand(count, -1, -1, -1),
                           model))
        if has_objects:
            target = (images[frame] * union[frame, ..., None]).expand(count, -1, -1, -1)
            objects.append(lpips(_render_views(scene, path, cameras, backend, include_background=False), target,
                                 model))
    return torch.stack(whole), torch.stack(objects) if objects else None


def _mean(values: list[torch.Tensor]) -> float | None:
    joined = torch.cat(values) if values else torch.zeros(0)
    return float(joined.double().mean()) if joined.numel() else None


@torch.no_grad()
def track_errors(scene: Scene, cameras: Cameras, tracks: PointTracks, reference_frames: dict[int, int],
                 hidden: list[int], backend: str = "auto") -> dict[str, float | int | None]:
    """End-point errors of the Gaussians attached to each object's 2D tracks (module docstring).

    A track of object ``o`` visible in its reference frame ``r`` is lifted to the world at the expected depth of
    ``o`` rendered alone there (tracks where that render's alpha is <= :data:`ALPHA_THRESHOLD` are left out),
    attached to the nearest of ``o``'s Gaussians at ``r``, and that Gaussian's projection is compared with the
    track on every other frame where the track is visible.

    Args:
        scene: the composed scene; cameras: its input cameras.
        tracks: the input tracks (pixels, centres at +0.5), labelled by object id.
        reference_frames: ``{object_id: frame}`` where each object's tracks are attached.
        hidden: frames held out of the fit (their errors are reported apart).

    Returns:
        ``track_epe_fitted_px`` and ``track_epe_hidden_px`` (None without a scored entry),
        ``track_epe_still_px`` (over all scored entries, the track against its own reference position),
        ``track_points`` (scored entries), ``tracks_attached``, ``tracks_total`` (tracks of the scene's objects).
    """
    viewmats, Ks = _cameras(cameras)
    is_hidden = torch.zeros(cameras.num_frames, dtype=torch.bool)
    is_hidden[hidden] = True
    fitted, held_out, still, attached, total = [], [], [], 0, 0
    for obj in scene.objects:
        rows = np.flatnonzero(tracks.labels == obj.object_id)
        total += rows.size
        ref = reference_frames.get(obj.object_id)
        if not obj.visible or ref is None or not rows.size:
            continue
        xy = torch.from_numpy(tracks.tracks[rows]).double()  # (P, T, 2)
        visible = torch.from_numpy(tracks.visibility[rows])
        out, _ = scene.render(float(normalized_time(ref, scene.num_frames)), viewmats[ref:ref + 1], Ks[ref:ref + 1],
                              cameras.width, cameras.height, backend=backend, include_background=False,
                              object_ids=[obj.object_id])
        cols = xy[:, ref, 0].floor().long().clamp(0, cameras.width - 1)
        lines = xy[:, ref, 1].floor().long().clamp(0, cameras.height - 1)
        keep = visible[:, ref] & (out.alphas[0, lines, cols, 0] > ALPHA_THRESHOLD)
        if not keep.any():
            continue
        xy, visible = xy[keep], visible[keep]
        depth = out.depths[0, lines[keep], cols[keep], 0].double()
        K = Ks[ref].double()
        camera_points = torch.stack([(xy[:, ref, 0] - K[0, 2]) / K[0, 0] * depth,
                                     (xy[:, ref, 1] - K[1, 2]) / K[1, 1] * depth, depth], dim=-1)
        camtoworld = torch.linalg.inv(viewmats[ref].double())
        lifted = camera_points @ camtoworld[:3, :3].T + camtoworld[:3, 3]
        means = object_trajectories(scene, obj.object_id).double()  # (T, N, 3)
        nearest = torch.cdist(lifted, means[ref]).argmin(dim=1)
        followed = torch.stack([project_points(means[f, nearest], viewmats[f:f + 1].double(),
                                               Ks[f:f + 1].double())[0][0] for f in range(scene.num_frames)], dim=1)
        scored = visible.clone()
        scored[:, ref] = False
        errors = (followed - xy).norm(dim=-1)
        fitted.append(errors[scored & ~is_hidden])
        held_out.append(errors[scored & is_hidden])
        still.append((xy - xy[:, ref:ref + 1]).norm(dim=-1)[scored])
        attached += int(keep.sum())
    return {"track_epe_fitted_px": _mean(fitted), "track_epe_hidden_px": _mean(held_out),
            "track_epe_still_px": _mean(still), "track_points": int(sum(s.numel() for s in still)),
            "tracks_attached": attached, "tracks_total": int(total)}


@torch.no_grad()
def remaining_penetration(scene: Scene, cameras: Cameras, config: InteractionConfig) -> dict:
    """The refine step's penetration metric on every input frame.

    Returns:
        ``{"pairs": {"a-b": mean fraction of a's Gaussians inside b (0: the background)}, "max": largest,
        "objects": largest between two objects}``.
    """
    centres = torch.from_numpy(cameras.centers).float()
    fractions: dict[str, list[float]] = {}
    for time in _times(scene.num_frames):
        for (a, b), value in penetration_fraction(scene, time, centres, config).items():
            fractions.setdefault(f"{a}-{b}", []).append(value)
    pairs = {k: sum(v) / len(v) for k, v in fractions.items()}
    return {"pairs": pairs, "max": max(pairs.values(), default=0.0),
            "objects": max((v for k, v in pairs.items() if not k.endswith("-0")), default=0.0)}


def stage_records(manifest: dict) -> dict[str, dict]:
    """Per stage of ``manifest.json``: backend, wall time and peak resident memory."""
    return {name: {"backend": record["backend"], "wall_s": record["wall_time_s"],
                   "peak_rss_mb": record["peak_rss_mb"]} for name, record in manifest["stages"].items()}


def _check_holdout(run: Path, masks: ObjectMasks, hidden: list[int]) -> dict[int, int]:
    """Each object's reference frame, after checking from the objects' and the background's ``fit.json`` and
    the scene's ``scene.json`` that no fit saw a hidden frame."""
    references, seen_by = {}, {}
    for object_id in masks.object_ids:
        fit = json.loads((run / "objects" / str(object_id) / "fit.json").read_text())
        seen_by[f"object {object_id}"] = [row["frame"] for row in fit["metrics"]["per_frame"] if row["seen"]]
        references[object_id] = int(fit["info"]["reference_frame"])
    background = run / "background" / "fit.json"
    if background.is_file():
        seen_by["background"] = json.loads(background.read_text())["fit_frames"]
    seen_by["compose"] = json.loads((run / "scene" / "scene.json").read_text())["metrics"]["fit_frames"]
    for fit, seen in seen_by.items():
        if set(seen) & set(hidden):
            raise RuntimeError(f"{fit} was fitted on hidden frames {sorted(set(seen) & set(hidden))}")
    return references


def _scalar(values: torch.Tensor, frames: list[int]) -> float | None:
    """nan-mean of ``values`` (T,) over ``frames``; None when nothing is left."""
    chosen = values[frames].double() if frames else values.new_zeros(0)
    chosen = chosen[~chosen.isnan()]
    return float(chosen.mean()) if chosen.numel() else None


@torch.no_grad()
def evaluate_run(run: Path, config: PipelineConfig, model: LPIPSAlex) -> dict:
    """Every measurement of the module docstring on a finished run directory (``config``: the run's settings)."""
    frames, cameras, masks = Frames.load(run / "frames"), Cameras.load(run / "cameras"), ObjectMasks.load(run / "masks")
    scene = load_scene(run / "scene")
    hidden = hidden_frames(frames.num_frames, config.holdout_every)
    fitted = fitted_frames(frames.num_frames, config.holdout_every)
    references = _check_holdout(run, masks, hidden)
    images = torch.from_numpy(frames.images).float() / 255.0
    union = torch.from_numpy(masks.union())
    backend = config.views.backend

    colors, _ = render_inputs(scene, cameras, backend)
    scores = image_scores(colors, images, union, model)
    row = {"frames": f"{len(fitted)}+{len(hidden)}", "size": f"{frames.width}x{frames.height}",
           "objects": ", ".join(f"{i} ({n})" for i, n in zip(masks.object_ids, masks.names))}
    for name, values in scores.items():
        row[f"{name}_fitted"], row[f"{name}_hidden"] = _scalar(values, fitted), _scalar(values, hidden)
    ious = object_ious(scene, cameras, masks, backend)
    row["object_iou_hidden"] = [_scalar(ious[i], hidden) if i in ious else None for i in masks.object_ids]
    row["object_iou_fitted"] = [_scalar(ious[i], fitted) if i in ious else None for i in masks.object_ids]

    whole, objects = novel_view_lpips(scene, cameras, images, union, model, backend=backend)
    row["novel_lpips"] = float(whole.mean())
    row["novel_lpips_views"] = whole.mean(dim=0).tolist()
    row["novel_lpips_objects"] = None if objects is None else float(objects.mean())
    row.update(track_errors(scene, cameras, PointTracks.load(run / "tracks"), references, hidden, backend))
    penetration = remaining_penetration(scene, cameras, config.compose.refine.interactions)
    metrics = json.loads((run / "scene" / "scene.json").read_text())["metrics"]
    row.update(penetration=penetration["max"], penetration_objects=penetration["objects"],
               penetration_pairs=penetration["pairs"],
               penetration_refine_before=metrics.get("interactions_before", {}).get("max_penetration"),
               penetration_refine_after=metrics.get("interactions_after", {}).get("max_penetration"))

    stages = stage_records(json.loads((run / "manifest.json").read_text()))
    row.update(stages=stages, backends={name: s["backend"] for name, s in stages.items()},
               total_s=sum(s["wall_s"] for s in stages.values()),
               peak_rss_mb=max(s["peak_rss_mb"] for s in stages.values()), camera_method=cameras.method)
    return row


def run_clip(clip: Path, run: Path, config: PipelineConfig, model: LPIPSAlex) -> dict:
    """Run (or resume) every pipeline stage on ``clip`` into ``run`` and measure it; returns the clip's row."""
    start = time.perf_counter()
    records = run_pipeline(PipelineInputs(video=clip / "frames", masks=clip / "masks"), config, run, list(STAGES))
    pipeline_s = time.perf_counter() - start
    row = {"clip": clip.name, **evaluate_run(run, config, model)}
    row.update(resumed=[stage.name for stage, _, ran in records if not ran], pipeline_s=round(pipeline_s, 1),
               evaluate_s=round(time.perf_counter() - start - pipeline_s, 1), run=str(run))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of clips")
    parser.add_argument("--clips", nargs="*", default=list(CLIPS), help="clip names (each needs masks/)")
    parser.add_argument("--preset", default="default", help="pipeline preset in configs/")
    parser.add_argument("--long-side", type=int, default=0, help="video.long_side (0: the preset's)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="pipeline overrides, e.g. fit.static_iters=50 video.max_frames=8")
    parser.add_argument("--work", type=Path, default=Path("runs") / "bench" / "scene",
                        help="run directories go to <work>/<clip> (finished stages are resumed)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--json", type=Path, help="write every row here")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    torch.set_num_threads(args.threads)
    config = pipeline_config(args.preset, args.long_side, args.set)
    model = load_lpips_alex()
    rows = []
    for clip in args.clips:
        rows.append(run_clip(args.data / clip, args.work / clip, config, model))
        print(f"{clip}: pipeline {rows[-1]['pipeline_s']} s, evaluation {rows[-1]['evaluate_s']} s",
              file=sys.stderr, flush=True)
    for columns in TABLES:
        print(markdown_table(columns, rows) + "\n")
    print(stage_table(rows, "clip"))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
