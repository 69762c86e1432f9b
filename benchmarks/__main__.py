"""One command for every benchmark: ``python -m benchmarks [--quick] [--clips ...] [--sections ...]``.

Runs the sections (render speed, weight-free masks, cameras, per-object fit, synthetic scenes with ground truth,
the whole pipeline on real clips) and writes BENCHMARKS.md (tables, the command line, date and machine facts) and
a JSON file holding every number in it. ``--quick`` uses fewer clips, frames, sizes and iterations (see ``benchmarks.harness.QUICK``).

Examples:
    python -m benchmarks --quick
    python -m benchmarks --quick --readme README.md   # and regenerate the README's results block
    python -m benchmarks --sections masks,fit --clips ds4d_stroller --out /tmp/B.md --json /tmp/b.json
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path

import cv2
import torch

from benchmarks import harness
from benchmarks.harness import DATA, FULL, QUICK, SECTIONS, machine_facts, now, run_section, write_outputs


def _read(path: Path, parser: argparse.ArgumentParser) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        parser.error(f"cannot read {path}: {exc.strerror}")


def parse_sections(spec: str) -> list[str]:
    """Comma-separated section names, in the order given; ``all`` for every section."""
    if spec == "all":
        return list(SECTIONS)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown section {unknown[0]!r} (choose from {', '.join(SECTIONS)} or all)"
                                         if unknown else "no section given")
    return list(dict.fromkeys(names))


def parse_args(argv: list[str], prog: str = "python -m benchmarks") -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the quick preset (fewer clips, frames, iterations)")
    parser.add_argument("--sections", type=parse_sections, default=list(SECTIONS),
                        help=f"comma-separated, from {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--clips", nargs="+", default=None,
                        help="clip names in ../shared/data for the real-clip sections (default: the preset's)")
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"), help="markdown report")
    parser.add_argument("--json", type=Path, default=Path("benchmarks.json"), help="every number, as JSON")
    parser.add_argument("--work", type=Path, default=Path("runs") / "bench",
                        help="where the synthetic scenes and the pipeline runs are written")
    parser.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads")
    parser.add_argument("--readme", type=Path, default=None,
                        help="also write the tables into this README's generated block (after the last section)")
    args = parser.parse_args(argv)
    opening = harness.readme_markers("quick" if args.quick else "full")[0]
    if args.readme is not None and opening not in _read(args.readme, parser):
        parser.error(f"{args.readme} has no block for this preset's tables (a line {opening!r})")
    missing = [clip for clip in args.clips or [] if not (DATA / clip / "frames").is_dir()]
    if missing:
        parser.error(f"unknown clip {missing[0]!r}: no {DATA / missing[0] / 'frames'}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    return args


def main(argv: list[str] | None = None, prog: str = "python -m benchmarks") -> int:
    """Run the benchmarks; ``prog`` is how the command is written in the report (``python run.py bench``)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv, prog)
    logging.basicConfig(level=logging.WARNING, format="benchmarks: %(message)s")
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    preset = QUICK if args.quick else FULL
    start = time.perf_counter()
    report = {"command": " ".join([prog, shlex.join(argv)]).strip(), "date": now(), "json": str(args.json),
              "preset": "quick" if args.quick else "full", "machine": machine_facts(args.threads), "sections": []}
    cpu = 0.0
    for name in args.sections:
        print(f"benchmarks: {name} ...", file=sys.stderr, flush=True)
        section = run_section(name, preset, args.clips, args.threads, args.work)
        cpu += section["cpu_s"]
        report["sections"].append(section)
        report.update(wall_s=round(time.perf_counter() - start, 1), cpu_s=round(cpu, 1))
        write_outputs(report, args.out, args.json)
        print(f"benchmarks: {name} done in {section['wall_s']} s ({section['cpu_s']} s CPU), "
              f"{len(section['rows'])} rows, {len(section['errors'])} failed", file=sys.stderr, flush=True)
    print(args.out.read_text())
    if args.readme is not None:
        args.readme.write_text(harness.splice_readme(args.readme.read_text(), report))
        print(f"benchmarks: tables written into {args.readme}", file=sys.stderr)
    failed = [e["item"] for s in report["sections"] for e in s["errors"]]
    if failed:
        print(f"benchmarks: failed items: {', '.join(failed)} (tracebacks in {args.json})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
