"""Camera stage on every shared clip: path taken, its checks, reprojection errors and time.

    python benchmarks/cameras_bench.py                       # all clips at 480 px, markdown table
    python benchmarks/cameras_bench.py --json out.json --sheets out_dir --clips cotracker_apple

Ground-truth object masks are used where a clip has them (``--no-masks`` to ignore them), as user-given
masks would be in a run. ``time_s`` is wall time, ``cpu_s`` the process's CPU time over all threads (on a
shared machine wall time depends on the load; CPU time much less).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocess.cameras.config import CamerasConfig  # noqa: E402
from preprocess.cameras.contact_sheet import contact_sheet_cameras  # noqa: E402
from preprocess.cameras.estimate import estimate_camera_motion  # noqa: E402
from preprocess.video import VideoConfig, load_frames  # noqa: E402
from scene4d.contracts.frames import Frames  # noqa: E402
from scene4d.contracts.masks import ObjectMasks  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _natural(path: Path) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.name)]


def load_clip_masks(clip: Path, frames: Frames) -> ObjectMasks | None:
    """Ground-truth masks of a shared clip (``masks/<id>/<frame>.png`` or ``masks/<frame>.png``), resized."""
    folder = clip / "masks"
    if not folder.is_dir():
        return None
    frame_files = sorted((p for p in (clip / "frames").iterdir() if p.is_file()), key=_natural)
    if len(frame_files) != frames.num_frames:
        return None
    layers = sorted((p for p in folder.iterdir() if p.is_dir()), key=_natural) or [folder]
    stacks, ids = [], []
    for k, layer in enumerate(layers):
        stack = []
        for frame_file in frame_files:
            found = next(iter(layer.glob(f"{frame_file.stem}.*")), None)
            mask = cv2.imread(str(found), cv2.IMREAD_GRAYSCALE) if found else None
            mask = np.zeros((frames.height, frames.width), np.uint8) if mask is None else cv2.resize(
                mask, (frames.width, frames.height), interpolation=cv2.INTER_NEAREST)
            stack.append(mask > 127)
        if np.any(stack):
            stacks.append(np.stack(stack))
            ids.append(int(layer.name) if layer.name.isdigit() else k + 1)
    return ObjectMasks(np.stack(stacks), ids, method="given") if stacks else None


def _attempts(report: dict) -> str:
    parts = []
    for attempt in report["attempts"]:
        name = attempt["path"].replace("colmap-", "")
        parts.append(f"{name} ok" if attempt["accepted"] else f"{name} x({', '.join(attempt['failed'])})")
    return "; ".join(parts) or "-"


def run_clip(clip: Path, long_side: int, use_masks: bool, config: CamerasConfig, sheets: Path | None) -> dict:
    frames = load_frames(clip / "frames", VideoConfig(long_side=long_side))
    masks = load_clip_masks(clip, frames) if use_masks else None
    start, cpu_start = time.perf_counter(), time.process_time()
    estimate = estimate_camera_motion(frames, masks, config)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    report = estimate.report
    accepted = next((a for a in report["attempts"] if a["accepted"]), None)
    if sheets is not None:
        sheets.mkdir(parents=True, exist_ok=True)
        sheet = contact_sheet_cameras(frames, estimate.cameras, estimate.tracks)
        cv2.imwrite(str(sheets / f"{clip.name}.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return {"clip": clip.name, "frames": frames.num_frames, "size": f"{frames.width}x{frames.height}",
            "masks": masks is not None, "path": estimate.backend, "attempts": _attempts(report),
            "registered": accepted["checks"]["registered"]["detail"].split(" ")[0] if accepted else "-",
            "points": accepted["checks"]["points"]["value"] if accepted else "-",
            "sfm_px": accepted["checks"]["reprojection"]["value"] if accepted else "-",
            "fov_deg": report["intrinsics"]["fov_deg"], "focal_source": report["intrinsics"]["source"],
            "shift_px": report["background"]["largest_shift_px"],
            "track_px": report["background_reprojection"]["median_px"],
            "track_p90_px": report["background_reprojection"]["p90_px"],
            "time_s": round(seconds, 1), "cpu_s": round(cpu_seconds, 1), "reason": estimate.reason, "report": report}


COLUMNS = ("clip", "frames", "size", "masks", "path", "attempts", "registered", "points", "sfm_px", "fov_deg",
           "shift_px", "track_px", "track_p90_px", "time_s", "cpu_s")


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of clips")
    parser.add_argument("--clips", nargs="*", help="clip names (default: all)")
    parser.add_argument("--long-side", type=int, default=480, help="frames resized to this longer side")
    parser.add_argument("--no-masks", action="store_true", help="ignore ground-truth masks")
    parser.add_argument("--json", type=Path, help="write every row, full reports included, here")
    parser.add_argument("--sheets", type=Path, help="write a contact sheet per clip into this folder")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    clips = [args.data / c for c in args.clips] if args.clips else sorted(
        p for p in args.data.iterdir() if (p / "frames").is_dir())
    rows, start = [], time.perf_counter()
    for clip in clips:
        row = run_clip(clip, args.long_side, not args.no_masks, CamerasConfig(), args.sheets)
        print(f"{row['clip']}: {row['path']} in {row['time_s']} s ({row['reason']})", file=sys.stderr, flush=True)
        rows.append(row)
    print(markdown(rows))
    cpu = sum(row["cpu_s"] for row in rows)
    print(f"\ntotal {time.perf_counter() - start:.0f} s wall, {cpu:.0f} s CPU (all threads) for {len(rows)} clips "
          f"at {args.long_side} px")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
