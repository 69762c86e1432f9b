"""The end-to-end pipeline: the config tree and the ordered stages that fill a run directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from preprocess.video import VideoConfig, load_frames
from scene4d.config_loading import to_dict
from scene4d.errors import InputError
from scene4d.rundir import RunDir, StageResult


@dataclass
class PipelineConfig:
    """Every setting of a run; presets in ``configs/*.yaml`` override these defaults."""

    video: VideoConfig = field(default_factory=VideoConfig)
    """Which frames are taken from the input and at what size."""


@dataclass
class Stage:
    """One step of the pipeline.

    Attributes:
        name: stage name, as recorded in the manifest and accepted by ``--stages``.
        group: the part of the pipeline it belongs to (``preprocess``, ``fit``, ``compose``).
        depends_on: stages whose outputs it reads.
        settings: everything that changes its outputs (config sections, input paths).
        run: does the work for a given input and run directory.
    """

    name: str
    group: str
    depends_on: tuple[str, ...]
    settings: Callable[[PipelineConfig, "PipelineInputs"], dict]
    run: Callable[["PipelineInputs", PipelineConfig, RunDir], StageResult]


@dataclass
class PipelineInputs:
    """What the user handed in.

    Attributes:
        video: a video file or a folder of frames.
        masks: optional folder of per-object masks (DAVIS layout).
    """

    video: Path
    masks: Path | None = None


def _decode(inputs: PipelineInputs, config: PipelineConfig, run_dir: RunDir) -> StageResult:
    frames = load_frames(inputs.video, config.video)
    frames.save(run_dir.path("frames"))
    metrics = {"num_frames": frames.num_frames, "width": frames.width, "height": frames.height,
               "source_size": list(frames.source_size), "fps": frames.fps}
    backend = "image-folder" if inputs.video.is_dir() else "pyav"
    return StageResult(backend=backend, reason="input is a folder" if inputs.video.is_dir() else "input is a video file",
                       outputs=["frames"], metrics=metrics)


STAGES: tuple[Stage, ...] = (
    Stage("decode", "preprocess", (), lambda c, i: {"input": str(i.video.resolve()), "video": to_dict(c.video)},
          _decode),
)


def select_stages(spec: str) -> list[Stage]:
    """Stages named by ``spec``: ``all``, a group name, or comma-separated stage names (kept in order).

    Raises:
        InputError: an unknown name.
    """
    if spec == "all":
        return list(STAGES)
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    known = {s.name for s in STAGES} | {s.group for s in STAGES}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise InputError(f"unknown stage {unknown[0]!r} (stages: {', '.join(s.name for s in STAGES)}; "
                         f"groups: {', '.join(sorted({s.group for s in STAGES}))}; or all)")
    return [s for s in STAGES if s.name in wanted or s.group in wanted]

