"""The benchmark sections, their presets, and the BENCHMARKS.md / JSON writers.

Each section calls the functions of one bench script (``render_bench``, ``masks_bench``, ``cameras_bench``,
``fit_bench``, ``scene_bench``) or :mod:`benchmarks.synthetic_eval` and returns a plain dict::

    {"title", "about", "settings": {...}, "tables": [[[key, header, digits], ...], ...], "rows": [...],
     "errors": [{"item", "error", "traceback"}], "wall_s", "cpu_s", "load_before", "load_after"}

``tables`` lists the column sets of one or more markdown tables over the same rows. The markdown is written from
that dict alone (each table cell is a row value rounded to the column's ``digits``), so every number in
BENCHMARKS.md can be found in the JSON.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import subprocess
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from benchmarks.synthetic_eval import SyntheticSettings

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SECTIONS = ("render", "masks", "cameras", "fit", "synthetic", "scene")
# Sections whose rows carry the manifest records of pipeline runs, and the row key naming each run.
STAGE_KEYS = {"synthetic": "scene", "scene": "clip"}


@dataclass
class Preset:
    """Sizes, clips and iterations of every section. Clip lists are intersected with what a section can use."""

    render_sizes: list[str]
    render_repeats: int
    masks_clips: list[str] | None
    masks_long_side: int
    cameras_clips: list[str] | None
    cameras_long_side: int
    fit_clips: list[str] | None
    fit_long_side: int
    fit_max_frames: int
    fit_iters_scale: float
    scene_clips: list[str] | None
    scene_preset: str
    scene_long_side: int
    scene_overrides: list[str] = field(default_factory=list)
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)


# None: every clip of ../shared/data the section can use.
FULL = Preset(
    render_sizes=["1000x128", "1000x256", "5000x128", "5000x256", "20000x128", "20000x256"], render_repeats=5,
    masks_clips=None, masks_long_side=384,
    cameras_clips=None, cameras_long_side=480,
    fit_clips=["ds4d_kid-football", "ds4d_stroller", "ds4d_rollerblade"], fit_long_side=256, fit_max_frames=0,
    fit_iters_scale=1.0,
    scene_clips=["ds4d_kid-football", "ds4d_stroller", "ds4d_rollerblade"], scene_preset="default", scene_long_side=256,
    synthetic=SyntheticSettings(seeds=(0, 1), num_frames=16, width=256, height=192, num_objects=2, preset="quick"),
)
QUICK = Preset(
    render_sizes=["1000x128", "5000x256", "20000x256"], render_repeats=3,
    masks_clips=None, masks_long_side=256,
    cameras_clips=None, cameras_long_side=256,
    fit_clips=["ds4d_kid-football", "ds4d_stroller", "ds4d_rollerblade"], fit_long_side=160, fit_max_frames=8,
    fit_iters_scale=0.5,
    scene_clips=["ds4d_stroller", "ds4d_kid-football"], scene_preset="quick", scene_long_side=128,
    synthetic=SyntheticSettings(seeds=(0, 1), num_frames=12, width=256, height=192, num_objects=2, preset="quick"),
)


def _has_masks(clip: str) -> bool:
    return (DATA / clip / "masks").is_dir()


def _all_clips() -> list[str]:
    return sorted(p.name for p in DATA.iterdir() if (p / "frames").is_dir()) if DATA.is_dir() else []


def select_clips(preset_clips: list[str] | None, requested: list[str] | None, needs_masks: bool) -> list[str]:
    """Clips a section runs on: ``requested`` (``--clips``) if given, else the preset's, else every clip; those
    without ground-truth masks dropped when the section needs them."""
    clips = requested if requested is not None else (preset_clips if preset_clips is not None else _all_clips())
    return [c for c in clips if not needs_masks or _has_masks(c)]


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _each(items: list, run: Callable[[object], list[dict]], section: dict) -> None:
    """Run ``run`` per item, collecting rows; a failing item is recorded in ``section['errors']``, not raised."""
    for item in items:
        try:
            section["rows"].extend(run(item))
        except Exception as exc:  # one bad clip must not lose the others' numbers
            section["errors"].append({"item": str(item), "error": f"{type(exc).__name__}: {exc}",
                                      "traceback": traceback.format_exc()})


def render_section(preset: Preset, clips: list[str] | None, threads: int, work: Path) -> dict:
    from benchmarks import render_bench

    backends = render_bench.available_backends()
    section = {"title": "Render speed", "settings": {"sizes": preset.render_sizes, "repeats": preset.render_repeats,
                                                     "backends": backends, "threads": threads},
               "about": "Forward + backward of `render()` on object-like scenes, each size in a fresh process "
                        "(`benchmarks/render_bench.py`): median ms over the repeats, and peak memory above the "
                        "process's resident set before the first render.",
               "tables": [[["gaussians", "N", 0], ["image", "image", None], ["backend", "backend", None],
                           ["ms", "ms", 1], ["peak_mib", "peak MiB", 0]]], "rows": [], "errors": []}

    def run(spec: str) -> list[dict]:
        n, size = (int(v) for v in spec.lower().split("x"))
        return [{"gaussians": n, "image": f"{size}x{size}", "backend": backend,
                 **render_bench.measure(backend, n, size, preset.render_repeats, threads)} for backend in backends]

    _each(preset.render_sizes, run, section)
    return section


def masks_section(preset: Preset, clips: list[str] | None, threads: int, work: Path) -> dict:
    from benchmarks import masks_bench

    selected = select_clips(preset.masks_clips, clips, needs_masks=True)
    section = {"title": "Weight-free segmentation vs ground-truth masks",
               "settings": {"clips": selected, "long_side": preset.masks_long_side},
               "about": "Motion segmentation (no masks given): foreground IoU per frame, and per-object IoU over "
                        "the clip with Hungarian matching (0 for a missed object); propagation from the frame-0 "
                        "ground truth: mean per-object IoU on the other frames (`benchmarks/masks_bench.py`).",
               "tables": [[["clip", "clip", None], ["frames", "frames", 0], ["size", "size", None],
                           ["objects", "objects", 0], ["found", "found", 0], ["foreground_iou", "fg IoU", 3],
                           ["object_iou", "object IoU", 3], ["object_ious", "per object", 2],
                           ["motion_s", "motion s", 1], ["propagation_iou", "propagation IoU", 3],
                           ["propagation_s", "propagation s", 1]]], "rows": [], "errors": []}
    _each(selected, lambda clip: [masks_bench.run_clip(clip, preset.masks_long_side)], section)
    return section


def cameras_section(preset: Preset, clips: list[str] | None, threads: int, work: Path) -> dict:
    from benchmarks import cameras_bench
    from preprocess.cameras.config import CamerasConfig

    selected = select_clips(preset.cameras_clips, clips, needs_masks=False)
    section = {"title": "Camera stage", "settings": {"clips": selected, "long_side": preset.cameras_long_side},
               "about": "Path taken and its checks per clip, ground-truth masks used where present "
                        "(`benchmarks/cameras_bench.py`): points and `sfm_px` of the accepted SfM model, "
                        "background track reprojection (median, p90 px), time and CPU time. No clip has "
                        "ground-truth cameras; the synthetic section measures accuracy.",
               "tables": [[[c, c, None] for c in cameras_bench.COLUMNS]], "rows": [], "errors": []}
    _each(selected, lambda clip: [cameras_bench.run_clip(DATA / clip, preset.cameras_long_side, True,
                                                         CamerasConfig(), None)], section)
    return section


def fit_section(preset: Preset, clips: list[str] | None, threads: int, work: Path) -> dict:
    from benchmarks import fit_bench
    from preprocess.stages import PreprocessConfig
    from scene4d.config_loading import load_config

    selected = select_clips(preset.fit_clips, clips, needs_masks=True)
    config = fit_bench.fit_config(preset.fit_iters_scale, [])
    section = {"title": "Per-object fit",
               "settings": {"clips": selected, "long_side": preset.fit_long_side,
                            "max_frames": preset.fit_max_frames, "iters_scale": preset.fit_iters_scale,
                            "iterations": [config.static_iters, config.motion_iters, config.joint_iters],
                            "holdout_every": fit_bench.HOLDOUT_EVERY},
               "about": "Ground-truth masks given, weight-free tracks/cameras/depth, every 4th frame hidden from the "
                        "fit (`benchmarks/fit_bench.py`): PSNR inside the true masks on fitted (train) and hidden "
                        "frames, and over the masks' interior (2 px or more from the outline), IoU of the rendered "
                        "alpha against the true masks, fit wall time and peak resident memory. Frames column: "
                        "fitted+hidden.",
               "tables": [[["clip", "clip", None], ["object", "object", None], ["frames", "frames", None],
                           ["size", "size", None], ["train_psnr", "train PSNR", 2],
                           ["train_psnr_interior", "train PSNR interior", 2], ["train_iou", "train IoU", 3],
                           ["hidden_psnr", "hidden PSNR", 2], ["hidden_psnr_interior", "hidden PSNR interior", 2],
                           ["hidden_iou", "hidden IoU", 3],
                           ["hidden_ssim", "hidden SSIM", 3], ["gaussians", "Gaussians", 0],
                           ["preprocess_s", "preprocess s", 1], ["fit_s", "fit s", 1],
                           ["peak_rss_mb", "peak RSS MiB", 0]]], "rows": [], "errors": []}
    preprocess_config = load_config(PreprocessConfig, ROOT / "configs", None, [])

    def run(clip: str) -> list[dict]:
        inputs = fit_bench.preprocess(DATA / clip, preset.fit_long_side, preset.fit_max_frames, preprocess_config)
        rows = []
        for object_id in inputs.masks.object_ids:
            row = fit_bench.run_object(inputs, object_id, config, None, clip)
            row.update(preprocess_s=round(inputs.seconds, 1), backends=inputs.backends)
            rows.append(row)
        return rows

    _each(selected, run, section)
    return section


def synthetic_section(preset: Preset, clips: list[str] | None, threads: int, work: Path) -> dict:
    from benchmarks.synthetic_eval import run_scene
    from scene4d.metrics.lpips import load_lpips_alex

    settings = preset.synthetic
    model = load_lpips_alex()
    section = {"title": "Synthetic scenes with ground truth", "settings": asdict(settings),
               "about": "Seeded Kubric-like scenes (`benchmarks/synthetic`), the pipeline run on the input view with "
                        "the true masks given and weight-free everything else, up to the composed scene; scored "
                        "against the ground truth (`benchmarks/synthetic_eval.py`). ATE/RPE after Sim(3) "
                        "alignment of the camera centres, in ground-truth units (the camera is 4.5 units from the "
                        "scene); focal err relative. Depth AbsRel of the composed scene's rendered depth on the "
                        "objects and on the background: `scale` fits each region's own scale, `sim3` uses the "
                        "camera alignment's scale. Novel views: the held-out cameras mapped into the "
                        "reconstruction by the similarity fitted to camera centres and optical-axis points (the "
                        "pipeline cannot take known cameras); input PSNR through the estimated cameras, and "
                        "`aligned` through the true input cameras mapped the same way. EPE: Gaussians attached to "
                        "the true surface tracks at their first visible frame and followed (3D in ground-truth units, "
                        "2D in pixels); `still`: the 2D EPE of points that never move, for scale. "
                        "Penetration: the compose stage's largest mean penetration fraction between objects.",
               "tables": [[["scene", "scene", None], ["objects", "objects", None], ["camera_method", "cameras", None],
                           ["ate", "ATE", 3], ["rpe_translation", "RPE t", 3], ["rpe_rotation_deg", "RPE deg", 2],
                           ["focal_error", "focal err", 3], ["depth_absrel_objects", "AbsRel obj", 3],
                           ["depth_absrel_background", "AbsRel bg", 3],
                           ["depth_absrel_objects_sim3", "AbsRel obj sim3", 3],
                           ["depth_absrel_background_sim3", "AbsRel bg sim3", 3],
                           ["depth_stage_absrel", "depth stage AbsRel", 3]],
                          [["scene", "scene", None], ["input_psnr", "input PSNR", 2],
                           ["input_psnr_aligned", "input PSNR aligned", 2], ["novel_psnr", "novel PSNR", 2],
                           ["novel_ssim", "novel SSIM", 3], ["novel_lpips", "novel LPIPS", 3],
                           ["track_epe3d", "EPE 3D", 3], ["track_epe2d_px", "EPE 2D px", 2],
                           ["track_epe2d_static_px", "EPE 2D still px", 2],
                           ["track_points", "track points", 0], ["penetration", "penetration", 3]]],
               "rows": [], "errors": []}
    _each(list(settings.seeds), lambda seed: [run_scene(seed, settings, work, model)], section)
    return section


def scene_section(preset: Preset, clips: list[str] | None, threads: int, work: Path) -> dict:
    from benchmarks import scene_bench
    from scene4d.metrics.lpips import load_lpips_alex

    selected = select_clips(preset.scene_clips, clips, needs_masks=True)
    config = scene_bench.pipeline_config(preset.scene_preset, preset.scene_long_side, preset.scene_overrides)
    model = load_lpips_alex()
    section = {"title": "Whole pipeline on real clips", "about": scene_bench.ABOUT,
               "settings": {"clips": selected, "preset": preset.scene_preset,
                            "long_side": config.video.long_side, "max_frames": config.video.max_frames,
                            "holdout_every": config.holdout_every,
                            "hidden_frames_seen_by": list(scene_bench.SEEN_BY),
                            "overrides": preset.scene_overrides},
               "tables": scene_bench.TABLES, "rows": [], "errors": []}
    _each(selected, lambda clip: [scene_bench.run_clip(DATA / clip, work / "scene" / clip, config, model)], section)
    return section


RUNNERS: dict[str, Callable[[Preset, list[str] | None, int, Path], dict]] = {
    "render": render_section, "masks": masks_section, "cameras": cameras_section, "fit": fit_section,
    "synthetic": synthetic_section, "scene": scene_section,
}


def run_section(name: str, preset: Preset, clips: list[str] | None, threads: int, work: Path) -> dict:
    """Run one section, adding its wall time, CPU time (this process and its children, all threads) and the
    1-minute load average before and after (how busy the machine was)."""
    load_before, start, cpu_start = os.getloadavg()[0], time.perf_counter(), _cpu_seconds()
    section = RUNNERS[name](preset, clips, threads, work)
    section.update(name=name, wall_s=round(time.perf_counter() - start, 1), cpu_s=round(_cpu_seconds() - cpu_start, 1),
                   load_before=round(load_before, 2), load_after=round(os.getloadavg()[0], 2))
    return section


def machine_facts(threads: int) -> dict:
    """What the numbers depend on: CPUs, load, library versions and threads, the commit."""
    import cv2

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    return {"cpu_count": os.cpu_count(), "cpu_affinity": len(os.sched_getaffinity(0)),
            "cpu_model": platform.processor() or platform.machine(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(), "opencv": cv2.__version__,
            "opencv_threads": cv2.getNumThreads(), "requested_threads": threads,
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def format_value(value, digits: int | None) -> str:
    """A table cell: ``-`` for None, numbers rounded to ``digits``, lists comma-joined."""
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v, digits) for v in value)
    if isinstance(value, bool) or digits is None or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.{digits}f}"


def markdown_table(columns: list, rows: list[dict]) -> str:
    """Markdown table of ``rows`` with ``columns`` ``[key, header, digits]``."""
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(format_value(row.get(key), digits).replace("|", "/")
                                       for key, _, digits in columns) + " |")
    return "\n".join(lines)


def stage_table(rows: list[dict], key: str) -> str:
    """Per-stage backend, wall time and peak memory of the pipeline runs behind ``rows`` (their ``stages``),
    each named by its row's ``key``."""
    table = [{key: row[key], "stage": stage, **record} for row in rows for stage, record in
             row.get("stages", {}).items()]
    return markdown_table([[key, key, None], ["stage", "stage", None], ["backend", "backend", None],
                           ["wall_s", "wall s", 1], ["peak_rss_mb", "peak RSS MiB", 0]], table)


def write_markdown(report: dict) -> str:
    """BENCHMARKS.md from the report dict (the JSON's content)."""
    facts = report["machine"]
    lines = [f"# Benchmarks, {report['preset']} preset", "",
             f"Generated by `{report['command']}` on {report['date']} (commit {facts['commit']}"
             f"{', uncommitted changes' if facts['dirty'] else ''}); every number below is in "
             f"`{report['json']}`.", "",
             f"Machine: {facts['cpu_count']} CPUs ({facts['cpu_affinity']} usable, {facts['cpu_model']}), "
             f"{facts['platform']}, Python {facts['python']}, torch {facts['torch']} with {facts['torch_threads']} "
             f"intra-op / {facts['torch_interop_threads']} inter-op threads, OpenCV {facts['opencv']} with "
             f"{facts['opencv_threads']} threads; load average at start {', '.join(map(str, facts['load_average']))}.",
             "", "| section | wall s | CPU s | load before | load after |", "|---|---|---|---|---|"]
    for section in report["sections"]:
        lines.append(f"| {section['name']} | {format_value(section['wall_s'], 1)} | {format_value(section['cpu_s'], 1)}"
                     f" | {format_value(section['load_before'], 2)} | {format_value(section['load_after'], 2)} |")
    lines += ["", f"Total: {format_value(report['wall_s'], 1)} s wall, {format_value(report['cpu_s'], 1)} s CPU "
              "(all threads of this process and its children). Wall time depends on how busy the machine is; "
              "CPU time much less so.", ""]
    for section in report["sections"]:
        lines += [f"## {section['title']}", "", section["about"], "",
                  "Settings: " + ", ".join(f"{k} = {format_value(v, None)}" for k, v in section["settings"].items()
                                           if k != "overrides")
                  + (f"; pipeline overrides: {' '.join(section['settings']['overrides'])}"
                     if section["settings"].get("overrides") else ""), "",
                  *(line for columns in section["tables"] for line in (markdown_table(columns, section["rows"]), ""))]
        if section["name"] in STAGE_KEYS and section["rows"]:
            lines += ["Pipeline stages:", "", stage_table(section["rows"], STAGE_KEYS[section["name"]]), ""]
        for error in section["errors"]:
            lines.append(f"- **failed** {error['item']}: {error['error']}")
        if section["errors"]:
            lines.append("")
    return "\n".join(lines)


def readme_markers(preset: str) -> tuple[str, str]:
    """The lines that open and close the README block a ``preset`` (``quick`` or ``full``) run writes."""
    return (f"<!-- benchmarks {preset}: written by python -m benchmarks --readme; edits here are overwritten -->",
            f"<!-- benchmarks {preset}: end -->")


def splice_readme(readme: str, report: dict) -> str:
    """``readme`` with the block of the report's preset (:func:`readme_markers`) replaced by the report's
    markdown, its headings moved two levels down (to sit under the README's results section).

    Raises:
        ValueError: the markers are missing or out of order.
    """
    opening, closing = readme_markers(report["preset"])
    begin, end = readme.find(opening), readme.find(closing)
    if begin < 0 or end < begin:
        raise ValueError(f"README: no {opening!r} ... {closing!r} block to fill")
    body = "\n".join("##" + line if line.startswith("#") else line for line in write_markdown(report).splitlines())
    return readme[:begin + len(opening)] + "\n" + body.strip() + "\n" + readme[end:]


def _jsonable(value):
    """numpy scalars and arrays, paths: what the bench scripts' rows may hold besides plain JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_outputs(report: dict, markdown_path: Path, json_path: Path) -> None:
    """Write the JSON and the markdown (rewritten after every section, so a stopped run keeps what it measured)."""
    json_path.write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")
    markdown_path.write_text(write_markdown(report))


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
