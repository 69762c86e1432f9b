"""Runs selected pipeline stages into a run directory, resuming finished ones, and summarises the run."""

from __future__ import annotations

import logging
from pathlib import Path

from compose.pipeline import STAGES, PipelineConfig, PipelineInputs, Stage
from compose.report import write_report
from scene4d.errors import InputError
from scene4d.rundir import RunDir

logger = logging.getLogger(__name__)


def check_inputs(inputs: PipelineInputs) -> None:
    """Fail before anything is written when an input path is missing."""
    if not inputs.video.exists():
        raise InputError(f"video: {inputs.video} does not exist")
    if inputs.masks is not None and not inputs.masks.is_dir():
        raise InputError(f"masks: {inputs.masks} is not a folder")
    for name, path in (("objects", inputs.prompts), ("edits", inputs.edits)):
        if path is not None and not path.is_file():
            raise InputError(f"{name}: {path} does not exist")


def run_pipeline(inputs: PipelineInputs, config: PipelineConfig, run_root: str | Path,
                 stages: list[Stage]) -> list[tuple[Stage, dict, bool]]:
    """Run ``stages`` in order.

    Returns:
        For each stage: the stage, its manifest record, and whether it ran (False: resumed).

    Raises:
        InputError: bad input; the failing stage is marked ``failed`` in the manifest.
    """
    check_inputs(inputs)
    run_dir = RunDir(run_root)
    results = []
    for stage in stages:
        missing = [dep for dep in stage.depends_on if (run_dir.stage_record(dep) or {}).get("status") != "done"]
        if missing:
            raise InputError(f"stage {stage.name} needs {', '.join(missing)} first (run with --stages all)")
        logger.info("stage %s ...", stage.name)
        try:
            record, ran = run_dir.run_stage(stage.name, stage.settings(config, inputs),
                                            lambda: stage.run(inputs, config, run_dir), stage.depends_on)
        except BaseException as exc:
            run_dir.mark_failed(stage.name, str(exc) or type(exc).__name__)
            write_report(run_dir.root, [s.name for s in STAGES])
            raise
        logger.info("stage %s %s (%s, %.1f s)", stage.name, "done" if ran else "resumed",
                    record["backend"], record["wall_time_s"])
        results.append((stage, record, ran))
    write_report(run_dir.root, [s.name for s in STAGES])
    return results


def print_summary(results: list[tuple[Stage, dict, bool]], run_root: str | Path) -> None:
    """One screen: each stage with its backend, time, memory and outputs, then where everything is."""
    rows = [("stage", "status", "backend", "time", "peak RSS", "outputs")]
    for stage, record, ran in results:
        rows.append((stage.name, "ran" if ran else "resumed", record["backend"], f"{record['wall_time_s']:.1f} s",
                     f"{record['peak_rss_mb']:.0f} MiB", ", ".join(record["outputs"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print()
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * width for width in widths))
    root = Path(run_root).resolve()
    print(f"\nrun directory: {root}")
    print(f"  report:   {root / 'report.html'}")
    print(f"  manifest: {root / 'manifest.json'} (settings, backends and why, timings, memory)")
    for folder, what in (("videos", "novel-view videos"), ("export", "PLYs, transforms.json, COLMAP text"),
                         ("objects", "per-object fits, rigs, renders"), ("contact_sheets", "stage pictures")):
        if (root / folder).exists():
            print(f"  {folder + '/':<9} {what}")
