"""The run report: ``report.html`` in the run directory, one page that says what ran and how it came out.

Sections, each built from whatever the run directory holds (layout: :mod:`scene4d.rundir`); a part that is
missing is shown as "not run" instead of failing the report:

- header: input, command, dates, package versions, total wall time of the recorded stages;
- stages: status, backend and why it was chosen, wall time, peak memory, outputs and metrics (manifest);
- objects, one row each: input crop and mask on the reference frame (the mask's bounding box), the render
  and its error map (``objects/<id>/renders/frame_<ref>.png``), the depth map of that crop (``depth/``), the
  trajectory over time and the losses over iterations (the fit's PNGs, or plotted here from the rig and
  ``fit.json``'s history when they are absent), and the fit's metrics;
- the contact sheets (``contact_sheets/*.png``);
- the composed scene: metrics (``scene/*.json``) and the novel-view videos (``scene/**/*.mp4``).

The page is self-contained: pictures and plots are inlined as base64 ``data:`` URIs. A video is embedded the
same way when it is at most ``ReportConfig.embed_video_mb`` and the embedded videos stay within
``ReportConfig.embed_videos_total_mb``; a larger one is linked by its path relative to the run directory, so
it plays when the report is opened from the run directory (the page says so next to it). No link points
outside the run directory.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

import cv2
import numpy as np
import torch
from matplotlib.figure import Figure

from compose.video_writer import colorize_depth, depth_range
from scene4d.atomic import write_bytes_atomic
from scene4d.conventions import normalized_time
from scene4d.errors import InputError
from scene4d.fit.rig import load_rig
from scene4d.rundir import MANIFEST

REPORT_FILE = "report.html"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NOT_RUN = '<p class="missing">not run</p>'

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 110em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.missing { color: #999; font-style: italic; margin: 0; }
.failed { color: #b00; font-weight: bold; }
.row { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; margin-bottom: 1.5em; }
figure { margin: 0; } figcaption { font-size: 0.85em; color: #555; text-align: center; }
img.tile { height: 12em; image-rendering: pixelated; }
img.plot { height: 16em; } img.sheet { max-width: 100%; }
video { max-width: 32em; }
pre { margin: 0; max-height: 20em; overflow: auto; font-size: 0.8em; }
"""


@dataclass
class ReportConfig:
    """What goes into the report and how large it may get."""

    max_image_width: int = 1280
    """Wider pictures are downscaled to this width before they are inlined."""
    crop_margin: int = 8
    """Pixels around an object's mask in its input crop."""
    embed_video_mb: float = 16.0
    """Videos up to this size are embedded; larger ones are linked by their path in the run directory."""
    embed_videos_total_mb: float = 48.0
    """Embedding stops once the embedded videos reach this total; the remaining ones are linked."""
    max_json_chars: int = 4000
    """A stage's metrics are shown as JSON cut to this many characters."""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _png_uri(image: np.ndarray, max_width: int) -> str:
    """A data URI of an (H, W, 3) RGB or (H, W) grey uint8 picture, downscaled to ``max_width``."""
    if image.shape[1] > max_width:
        height = max(1, round(image.shape[0] * max_width / image.shape[1]))
        image = cv2.resize(image, (max_width, height), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)
    if not ok:
        raise RuntimeError(f"could not encode a {image.shape} picture as PNG")
    return _data_uri(png.tobytes(), "image/png")


def _read_rgb(path: Path) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _file_uri(path: Path, max_width: int) -> str | None:
    """A PNG file as a data URI: its own bytes when narrow enough, else downscaled; None if unreadable."""
    image = _read_rgb(path)
    if image is None:
        return None
    data = path.read_bytes()
    if image.shape[1] <= max_width and data.startswith(PNG_SIGNATURE):
        return _data_uri(data, "image/png")
    return _png_uri(image, max_width)


def _figure_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return _data_uri(buffer.getvalue(), "image/png")


def _figure(uri: str | None, caption: str, css: str = "tile") -> str:
    body = NOT_RUN if uri is None else f'<img class="{css}" src="{uri}" alt="{_esc(caption)}">'
    return f"<figure>{body}<figcaption>{_esc(caption)}</figcaption></figure>"


def _relative_link(path: Path, run_root: Path) -> str:
    return quote(path.relative_to(run_root).as_posix())


def _format_seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "n/a" if value is None else str(value)


def _scalars(value, prefix: str = "") -> list[tuple[str, str]]:
    """Flattened ``(dotted key, text)`` rows of a JSON value; lists of more than 8 items are counted."""
    if isinstance(value, dict):
        return [row for key, item in value.items() for row in _scalars(item, f"{prefix}.{key}" if prefix else key)]
    if isinstance(value, list):
        if len(value) > 8 or any(isinstance(v, (dict, list)) for v in value):
            return [(prefix, f"[{len(value)} items]")]
        return [(prefix, ", ".join(_format_value(v) for v in value))]
    return [(prefix, _format_value(value))]


def _key_value_table(rows: list[tuple[str, str]]) -> str:
    if not rows:
        return NOT_RUN
    body = "".join(f"<tr><th>{_esc(k)}</th><td class=\"num\">{_esc(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _header(run_root: Path, manifest: dict) -> str:
    stages = manifest.get("stages", {})
    decode = stages.get("decode", {}).get("settings", {})
    total = sum(r.get("wall_time_s", 0.0) for r in stages.values() if r.get("status") == "done")
    versions = ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items())
    rows = [("input", decode.get("input") or "unknown"), ("command", manifest.get("command", "unknown")),
            ("run created", manifest.get("created", "unknown")),
            ("report written", datetime.now(timezone.utc).isoformat(timespec="seconds")),
            ("total wall time", _format_seconds(total)), ("versions", versions or "unknown")]
    table = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    return f"<h1>scene4d run: {_esc(run_root.resolve().name)}</h1><table>{table}</table>"


def _stages(run_root: Path, manifest: dict, expected: Sequence[str], config: ReportConfig) -> str:
    records = manifest.get("stages", {})
    names = list(dict.fromkeys([*expected, *records]))
    if not names:
        return f"<h2>Stages</h2>{NOT_RUN}"
    head = ("<tr><th>stage</th><th>status</th><th>backend</th><th>why</th><th>wall time</th><th>peak RSS</th>"
            "<th>outputs</th><th>metrics</th></tr>")
    rows = []
    for name in names:
        record = records.get(name)
        if record is None:
            rows.append(f'<tr><td>{_esc(name)}</td><td colspan="7" class="missing">not run</td></tr>')
            continue
        status = record.get("status", "unknown")
        status_cell = (f'<span class="failed">failed: {_esc(record.get("error", ""))}</span>' if status == "failed"
                       else _esc(status))
        time_cell = _format_seconds(record["wall_time_s"]) if "wall_time_s" in record else ""
        memory = f"{record['peak_rss_mb']:.0f} MiB" if "peak_rss_mb" in record else ""
        if record.get("peak_cuda_mb") is not None:
            memory += f" (CUDA {record['peak_cuda_mb']:.0f} MiB)"
        outputs = ", ".join(f'<a href="{_relative_link(run_root / out, run_root)}">{_esc(out)}</a>'
                            for out in record.get("outputs", []) if (run_root / out).resolve().is_relative_to(
                                run_root.resolve()))
        metrics = json.dumps(record.get("metrics", {}), indent=1)
        if len(metrics) > config.max_json_chars:
            metrics = metrics[:config.max_json_chars] + "\n..."
        metrics_cell = f"<details><summary>show</summary><pre>{_esc(metrics)}</pre></details>" if record.get(
            "metrics") else ""
        rows.append(f"<tr><td>{_esc(name)}</td><td>{status_cell}</td><td>{_esc(record.get('backend', ''))}</td>"
                    f"<td>{_esc(record.get('backend_reason', ''))}</td><td class=\"num\">{time_cell}</td>"
                    f"<td class=\"num\">{memory}</td><td>{outputs}</td><td>{metrics_cell}</td></tr>")
    return f"<h2>Stages</h2><table>{head}{''.join(rows)}</table>"


def _object_list(run_root: Path) -> list[tuple[int, str, dict]]:
    """``(id, name, masks summary row)`` of every object the masks found or the fit wrote."""
    found = {}
    for row in (_read_json(run_root / "masks" / "objects.json") or {}).get("objects", []):
        found[int(row["id"])] = (row.get("name", f"object_{row['id']}"), row)
    objects_dir = run_root / "objects"
    for folder in sorted(objects_dir.iterdir()) if objects_dir.is_dir() else []:
        if folder.is_dir() and folder.name.isdigit() and int(folder.name) not in found:
            found[int(folder.name)] = (f"object_{folder.name}", {})
    return [(object_id, name, row) for object_id, (name, row) in sorted(found.items())]


def _reference_frame(run_root: Path, object_id: int, fit: dict | None) -> int | None:
    """The fit's reference frame, else the frame where the mask is largest, else None (no mask)."""
    rig = _read_json(run_root / "objects" / str(object_id) / "rig" / "rig.json") or {}
    for info in ((fit or {}).get("info", {}), rig):
        if info.get("reference_frame") is not None:
            return int(info["reference_frame"])
    areas = [(int(np.count_nonzero(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE))), int(p.stem))
             for p in sorted((run_root / "masks" / str(object_id)).glob("*.png"))]
    return max(areas)[1] if areas else None


def _mask_box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return slice(0, mask.shape[0]), slice(0, mask.shape[1])
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, mask.shape[0])),
            slice(max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, mask.shape[1])))


def _depth_crop(run_root: Path, frame: int, box: tuple[slice, slice]) -> np.ndarray | None:
    folder = run_root / "depth"
    if not (folder / "depth.npy").is_file():
        return None
    depth = np.array(np.load(folder / "depth.npy", mmap_mode="r")[frame][box], dtype=np.float32)
    if (folder / "confidence.npy").is_file():
        depth[np.load(folder / "confidence.npy", mmap_mode="r")[frame][box] <= 0] = 0.0
    return colorize_depth(depth, *depth_range(depth))


def _plot_trajectory(rig_dir: Path) -> str | None:
    if not (rig_dir / "rig.json").is_file():
        return None
    model, info = load_rig(rig_dir)
    num_frames = int(info.get("num_frames", 2))
    frames = torch.linspace(0, num_frames - 1, max(20 * num_frames, 2))
    with torch.no_grad():
        positions = model.trajectory.transform(normalized_time(frames, num_frames))[2].numpy()
    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axis = figure.subplots()
    for index, name in enumerate("xyz"):
        axis.plot(frames.numpy(), positions[:, index], label=name)
    axis.set(xlabel="frame", ylabel="world position", title="object position")
    axis.legend()
    return _figure_uri(figure)


def _plot_losses(history: list[dict]) -> str | None:
    if not history:
        return None
    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axis = figure.subplots()
    iterations = np.arange(len(history))  # logged rows in order: stages one after the other
    for name in sorted({k for row in history for k in row} - {"stage", "step", "gaussians"}):
        values = np.array([row.get(name, np.nan) for row in history], dtype=float)
        axis.plot(iterations, np.where(values > 0, values, np.nan), label=name)
    for index, row in enumerate(history):
        if index == 0 or row.get("stage") != history[index - 1].get("stage"):
            axis.axvline(index, color="grey", linestyle="--", linewidth=0.8)
            axis.annotate(str(row.get("stage", "")), (index, 1.0), xycoords=("data", "axes fraction"),
                          xytext=(3, -12), textcoords="offset points", color="grey")
    axis.set(yscale="log", xlabel="logged iteration", ylabel="loss", title="losses")
    axis.legend(fontsize="small")
    return _figure_uri(figure)


def _object_row(run_root: Path, object_id: int, name: str, summary: dict, config: ReportConfig) -> str:
    folder = run_root / "objects" / str(object_id)
    fit = _read_json(folder / "fit.json")
    frame = _reference_frame(run_root, object_id, fit)
    crop = mask_crop = depth = render = error = None
    if frame is not None:
        mask = cv2.imread(str(run_root / "masks" / str(object_id) / f"{frame:05d}.png"), cv2.IMREAD_GRAYSCALE)
        image = _read_rgb(run_root / "frames" / f"{frame:05d}.png")
        if mask is not None:
            box = _mask_box(mask > 127, config.crop_margin)
            mask_crop = _png_uri(mask[box], config.max_image_width)
            crop = None if image is None else _png_uri(image[box], config.max_image_width)
            depth_rgb = _depth_crop(run_root, frame, box)
            depth = None if depth_rgb is None else _png_uri(depth_rgb, config.max_image_width)
        panels = _read_rgb(folder / "renders" / f"frame_{frame:05d}.png")
        if panels is not None:  # input | render | error, side by side (scene4d.fit.outputs)
            third = panels.shape[1] // 3
            render = _png_uri(panels[:, third:2 * third], config.max_image_width)
            error = _png_uri(panels[:, 2 * third:], config.max_image_width)
    trajectory = _file_uri(folder / "trajectory.png", config.max_image_width) or _plot_trajectory(folder / "rig")
    losses = _file_uri(folder / "losses.png", config.max_image_width) or _plot_losses((fit or {}).get("history", []))
    facts = [("frames visible", summary.get("frames_visible")), ("mean area (px)", summary.get("mean_area"))]
    if fit is not None:
        metrics = {k: v for k, v in fit.get("metrics", {}).items() if k != "per_frame"}
        facts += [("gaussians", fit.get("num_gaussians")),
                  ("fit time", _format_seconds(sum(fit.get("stage_seconds", {}).values())))]
        facts += _scalars(metrics)
    facts = [(k, _format_value(v)) for k, v in facts if v is not None]
    where = "" if frame is None else f", reference frame {frame}"
    figures = [_figure(crop, "input"), _figure(mask_crop, "mask"), _figure(render, "render"),
               _figure(error, "error"), _figure(depth, "depth (preprocessing)"),
               _figure(trajectory, "trajectory", "plot"), _figure(losses, "losses", "plot")]
    return (f"<h3>object {object_id}: {_esc(name)}{_esc(where)}</h3>"
            f'<div class="row object" id="object-{object_id}">{"".join(figures)}'
            f"<figure>{_key_value_table(facts)}<figcaption>metrics</figcaption></figure></div>")


def _objects(run_root: Path, config: ReportConfig) -> str:
    objects = _object_list(run_root)
    if not objects:
        return f"<h2>Objects</h2>{NOT_RUN}"
    return "<h2>Objects</h2>" + "".join(_object_row(run_root, i, n, s, config) for i, n, s in objects)


def _contact_sheets(run_root: Path, config: ReportConfig) -> str:
    sheets = sorted((run_root / "contact_sheets").glob("*.png"))
    if not sheets:
        return f"<h2>Contact sheets</h2>{NOT_RUN}"
    return "<h2>Contact sheets</h2>" + "".join(
        f'<div class="row">{_figure(_file_uri(p, config.max_image_width), p.stem, "sheet")}</div>' for p in sheets)


def _videos(run_root: Path, config: ReportConfig) -> str:
    videos = sorted((run_root / "scene").rglob("*.mp4")) if (run_root / "scene").is_dir() else []
    if not videos:
        return f"<h3>Novel-view videos</h3>{NOT_RUN}"
    embedded_mb, items = 0.0, []
    for path in videos:
        size_mb = path.stat().st_size / 2**20
        label = path.relative_to(run_root / "scene").with_suffix("").as_posix()
        if size_mb <= config.embed_video_mb and embedded_mb + size_mb <= config.embed_videos_total_mb:
            embedded_mb += size_mb
            source, note = _data_uri(path.read_bytes(), "video/mp4"), label
        else:
            source = _relative_link(path, run_root)
            note = f"{label} (linked, {size_mb:.1f} MB: open this report from the run directory to play it)"
        items.append(f'<figure><video controls loop muted playsinline preload="metadata">'
                     f'<source src="{source}" type="video/mp4"></video><figcaption>{_esc(note)}</figcaption>'
                     f"</figure>")
    return f'<h3>Novel-view videos</h3><div class="row">{"".join(items)}</div>'


def _scene(run_root: Path, config: ReportConfig) -> str:
    tables = [f"<figure>{_key_value_table(_scalars(_read_json(p)))}<figcaption>{_esc(p.name)}</figcaption></figure>"
              for p in sorted((run_root / "scene").glob("*.json"))] if (run_root / "scene").is_dir() else []
    metrics = f'<div class="row">{"".join(tables)}</div>' if tables else NOT_RUN
    return f"<h2>Composed scene</h2><h3>Metrics</h3>{metrics}{_videos(run_root, config)}"


def write_report(run_root: str | Path, expected_stages: Sequence[str] = (), config: ReportConfig | None = None
                 ) -> Path:
    """Write ``report.html`` (module docstring) into the run directory, atomically.

    Args:
        run_root: the run directory.
        expected_stages: stage names listed as "not run" when the manifest has no record of them (the
            pipeline's stages, in order).
        config: size limits.

    Returns:
        The report's path.

    Raises:
        InputError: ``run_root`` has no manifest (it is not a run directory).
    """
    run_root = Path(run_root)
    config = config or ReportConfig()
    manifest = _read_json(run_root / MANIFEST)
    if manifest is None:
        raise InputError(f"report: {run_root / MANIFEST} is missing; is {run_root} a run directory?")
    body = (_header(run_root, manifest) + _stages(run_root, manifest, expected_stages, config)
            + _objects(run_root, config) + _contact_sheets(run_root, config) + _scene(run_root, config))
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>scene4d report: {_esc(run_root.resolve().name)}</title><style>{STYLE}</style></head>"
            f"<body>{body}</body></html>\n")
    path = run_root / REPORT_FILE
    write_bytes_atomic(path, page.encode("utf-8"))
    return path
