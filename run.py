"""scene4d command line: ``python run.py --video clip.mp4 [--masks DIR] [--out DIR] [key=value ...]``,
``python run.py view <run dir>`` for the interactive viewer and ``python run.py bench`` for the benchmarks.

Bad input ends with one line on stderr and exit code 2; an unexpected failure with one line pointing to
the traceback saved in the run directory (exit code 1).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

import torch

from compose.pipeline import PipelineConfig, PipelineInputs, select_stages
from compose.runner import print_summary, run_pipeline
from scene4d.config_loading import load_config, preset_names, to_yaml
from scene4d.errors import InputError

PRESETS_DIR = Path(__file__).resolve().parent / "configs"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="Reconstruct a monocular video as a compositional 4D Gaussian scene.",
        epilog=f"Presets: {', '.join(preset_names(PRESETS_DIR))}. Overrides are section.key=value, "
               "e.g. video.long_side=480; --show-config lists every key.",
    )
    parser.add_argument("--video", type=Path, help="video file (mp4, mov, webm, avi, mkv) or folder of frames")
    parser.add_argument("--masks", type=Path, default=None, help="per-object masks, DAVIS layout <dir>/<id>/<frame>.png")
    parser.add_argument("--objects", type=Path, default=None,
                        help="prompts JSON (points/boxes per object) for the SAM/SAM2 backends")
    parser.add_argument("--edits", type=Path, default=None,
                        help="scene edits JSON: remove, move, rotate, scale or time-shift objects (no refitting)")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<video name>)")
    parser.add_argument("--preset", default="default", help="preset name in configs/ or a YAML file")
    parser.add_argument("--stages", default="all", help="all, a group (preprocess), or stage names, comma-separated")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch (0: its default; 1 is much faster on a busy shared machine)")
    parser.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs="*", help="config overrides, section.key=value")
    return parser.parse_args(argv)


def view(argv: list[str]) -> int:
    """``python run.py view <run dir> [--port N] [--host H]``: the interactive viewer."""
    parser = argparse.ArgumentParser(prog="run.py view", description="Interactive viewer of a finished run.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to reach it from other machines")
    args = parser.parse_args(argv)
    from compose.viewer import serve

    try:
        serve(args.run_dir, port=args.port, host=args.host)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="scene4d: %(message)s")
    if argv[:1] == ["view"]:
        return view(argv[1:])
    if argv[:1] == ["bench"]:
        from benchmarks.__main__ import main as bench

        return bench(argv[1:], prog="python run.py bench")
    args = parse_args(argv)
    run_root = None
    try:
        config = load_config(PipelineConfig, PRESETS_DIR, args.preset, args.overrides)
        if args.show_config:
            print(to_yaml(config), end="")
            return 0
        if args.video is None:
            raise InputError("--video is required (a video file or a folder of frames)")
        if args.threads:
            torch.set_num_threads(args.threads)
        stages = select_stages(args.stages)
        inputs = PipelineInputs(video=args.video, masks=args.masks, prompts=args.objects,
                                edits=args.edits)
        run_root = args.out or Path("runs") / args.video.stem
        records = run_pipeline(inputs, config, run_root, stages)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished stages are kept and resume on the next run", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: keep the traceback for the report, print one line
        log = Path(run_root or ".") / "error.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
        print(f"error: unexpected {type(exc).__name__}: {exc} (traceback in {log})", file=sys.stderr)
        return 1
    print_summary(records, run_root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
