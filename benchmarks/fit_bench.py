"""Per-object fit quality on the shared DreamScene4D clips (issue "Quality, measured").

    python benchmarks/fit_bench.py                                    # the full protocol, markdown table
    python benchmarks/fit_bench.py --max-frames 8 --iters-scale 0.3   # a quick version
    python benchmarks/fit_bench.py --clips ds4d_stroller --set lr_means=3e-3 weights.depth=0 --json out.json

Protocol: ground-truth masks given, weight-free backends for tracks, cameras and depth (the preprocessing
stages with their default configs), frames resized to 256 px on the long side, every 4th frame hidden from
the fit (``holdout_every=4``). Per clip and object: PSNR inside the true masks on the fitted
frames and on the hidden ones (over the whole mask, and over its interior: where the two differ, the error is
at the silhouette), IoU of the rendered alpha against the true masks on the hidden frames, wall
time and peak memory (resident set) of the fit, and the Gaussian count. Metrics as in
:mod:`scene4d.fit.outputs`. Targets: train PSNR >= 28 dB, hidden PSNR >= 24 dB, hidden IoU >= 0.85,
<= 4 min per object for a 16-frame clip on 2 CPU cores.

Torch runs on ``--threads`` threads (default 2, the target machine's idle cores): on a busy machine more
threads than free cores make the many small ops of a fit much slower.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocess.masks.config import MasksConfig  # noqa: E402
from preprocess.masks.segment import segment_objects  # noqa: E402
from preprocess.stages import PreprocessConfig, run_cameras, run_depth, run_tracks  # noqa: E402
from preprocess.video import VideoConfig, load_frames  # noqa: E402
from scene4d.config_loading import load_config  # noqa: E402
from scene4d.fit.config import FitConfig  # noqa: E402
from scene4d.fit.fit_object import fit_object  # noqa: E402
from scene4d.fit.observations import ObjectObservations  # noqa: E402
from scene4d.fit.outputs import evaluate_object, hidden_frames, write_object_outputs  # noqa: E402
from scene4d.resources import measure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
CLIPS = ("ds4d_kid-football", "ds4d_stroller", "ds4d_rollerblade")
HOLDOUT_EVERY = 4


@dataclasses.dataclass
class Inputs:
    """One clip's preprocessed artefacts and what producing them cost."""

    frames: object
    masks: object
    tracks: object
    cameras: object
    depth: object
    backends: dict
    seconds: float


def preprocess(clip: Path, long_side: int, max_frames: int, config: PreprocessConfig) -> Inputs:
    """Frames, given masks, and the tracks, cameras and depth of a clip (weight-free with ``auto`` when no
    learned weights are installed)."""
    start = time.perf_counter()
    frames = load_frames(clip / "frames", VideoConfig(long_side=long_side, max_frames=max_frames))
    masks, mask_backend, _ = segment_objects(frames, MasksConfig(backend="masks"), clip / "masks")
    tracks, track_backend, _ = run_tracks(frames, masks, config)
    cameras = run_cameras(frames, masks, config)
    depth, depth_backend, _ = run_depth(frames, masks, cameras.cameras, tracks, config)
    backends = {"masks": mask_backend, "tracks": track_backend, "cameras": cameras.backend, "depth": depth_backend}
    return Inputs(frames, masks, tracks, cameras.cameras, depth, backends, time.perf_counter() - start)


def fit_config(iters_scale: float, overrides: list[str]) -> FitConfig:
    """The default fit settings with iterations scaled, then ``key=value`` overrides."""
    config = load_config(FitConfig, ROOT / "configs", None, overrides)
    for name in ("static_iters", "motion_iters", "joint_iters"):
        iterations = getattr(config, name)
        setattr(config, name, max(1, round(iterations * iters_scale)) if iterations > 0 else 0)
    return config


def run_object(inputs: Inputs, object_id: int, config: FitConfig, outputs: Path | None, clip: str) -> dict:
    """Fit one object, evaluate it on its fitted and hidden frames; optionally write its outputs."""
    obs = ObjectObservations.gather(object_id, inputs.frames, inputs.masks, inputs.depth, inputs.cameras,
                                    inputs.tracks, holdout_every=HOLDOUT_EVERY)
    with measure() as usage:
        result = fit_object(obs, config, progress=False)
    train = evaluate_object(result.model, obs, obs.train_frames, config.backend)
    hidden = evaluate_object(result.model, obs, hidden_frames(obs), config.backend)
    name = inputs.masks.names[inputs.masks.object_ids.index(object_id)]
    if outputs is not None:
        write_object_outputs(result, obs, outputs / clip / "objects" / str(object_id),
                             {"object_id": object_id, "name": name, "clip": clip}, config)
    rounded = lambda v, digits=2: None if v is None else round(v, digits)  # noqa: E731
    return {
        "clip": clip, "object": f"{object_id} ({name})", "frames": f"{obs.train_frames.numel()}+"
        f"{hidden['frames'].__len__()}", "size": f"{obs.size[0]}x{obs.size[1]}",
        "train_psnr": rounded(train["psnr"]), "train_psnr_interior": rounded(train["psnr_interior"]),
        "train_iou": rounded(train["iou"], 3), "hidden_psnr": rounded(hidden["psnr"]),
        "hidden_psnr_interior": rounded(hidden["psnr_interior"]), "hidden_iou": rounded(hidden["iou"], 3),
        "hidden_ssim": rounded(hidden["ssim"], 3), "gaussians": result.model.gaussians.num_gaussians,
        "fit_s": round(usage.wall_s, 1), "peak_rss_mb": round(usage.peak_rss_mb),
        "stage_s": {k: round(v, 1) for k, v in result.stage_seconds.items()},
        "train_per_frame": train["per_frame"], "hidden_per_frame": hidden["per_frame"],
    }


COLUMNS = ("clip", "object", "frames", "size", "train_psnr", "train_psnr_interior", "train_iou", "hidden_psnr",
           "hidden_psnr_interior", "hidden_iou", "hidden_ssim",
           "gaussians", "fit_s", "peak_rss_mb")


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join("-" if row[c] is None else str(row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of clips")
    parser.add_argument("--clips", nargs="*", default=list(CLIPS), help="clip names")
    parser.add_argument("--long-side", type=int, default=256, help="frames resized to this longer side")
    parser.add_argument("--max-frames", type=int, default=0, help="first frames of each clip only (0: all)")
    parser.add_argument("--iters-scale", type=float, default=1.0,
                        help="multiplies the static, motion and joint iterations")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="FitConfig overrides, e.g. lr_means=3e-3 weights.depth=0")
    parser.add_argument("--preprocess-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="PreprocessConfig overrides, e.g. cameras.backend=rotation")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--outputs", type=Path, help="write each object's outputs under <dir>/<clip>/objects/<id>")
    parser.add_argument("--json", type=Path, help="write every row, per-frame metrics included, here")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    torch.set_num_threads(args.threads)
    config = fit_config(args.iters_scale, args.set)
    preprocess_config = load_config(PreprocessConfig, ROOT / "configs", None, args.preprocess_set)
    rows, start = [], time.perf_counter()
    for clip in args.clips:
        inputs = preprocess(args.data / clip, args.long_side, args.max_frames, preprocess_config)
        print(f"{clip}: {inputs.frames.num_frames} frames {inputs.frames.width}x{inputs.frames.height}, "
              f"preprocessed in {inputs.seconds:.0f} s ({inputs.backends})", file=sys.stderr, flush=True)
        for object_id in inputs.masks.object_ids:
            row = run_object(inputs, object_id, config, args.outputs, clip)
            row.update(preprocess_s=round(inputs.seconds, 1), backends=inputs.backends)
            print(f"  {row['object']}: train {row['train_psnr']} dB, hidden {row['hidden_psnr']} dB "
                  f"IoU {row['hidden_iou']}, {row['gaussians']} Gaussians, {row['fit_s']} s {row['stage_s']}",
                  file=sys.stderr, flush=True)
            rows.append(row)
    print(markdown(rows))
    print(f"\n{len(rows)} objects in {time.perf_counter() - start:.0f} s; long side {args.long_side} px, "
          f"max frames {args.max_frames or 'all'}, iterations {config.static_iters}/{config.motion_iters}/"
          f"{config.joint_iters}, {args.threads} threads, fit overrides {args.set or 'none'}, preprocess overrides "
          f"{args.preprocess_set or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"config": dataclasses.asdict(config), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
