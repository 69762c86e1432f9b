"""The end-to-end pipeline: the config tree and the ordered stages that fill a run directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from compose import stages
from compose.background import BackgroundConfig
from compose.export import ExportConfig
from compose.inpaint_diffusion import DiffusionInpaintConfig
from compose.novel_views import NovelViewConfig
from compose.placement import PlacementConfig
from compose.refine import RefineConfig
from preprocess.stages import PreprocessConfig
from preprocess.video import VideoConfig
from scene4d.config_loading import to_dict
from scene4d.errors import InputError
from scene4d.fit.config import FitConfig
from scene4d.rundir import RunDir, StageResult


@dataclass
class ComposeConfig:
    """How the fitted parts become one scene."""

    placement: PlacementConfig = field(default_factory=PlacementConfig)
    """Robust scale of each object along the camera rays to agree with the scene depth."""
    refine: RefineConfig = field(default_factory=RefineConfig)
    """Joint refinement with the interaction constraints (iterations=0 turns it off)."""


@dataclass
class PipelineConfig:
    """Every setting of a run; presets in ``configs/*.yaml`` override these defaults."""

    video: VideoConfig = field(default_factory=VideoConfig)
    """Which frames are taken from the input and at what size."""
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    """Masks, tracks, cameras and depth."""
    fit: FitConfig = field(default_factory=FitConfig)
    """Per-object 4D Gaussian fitting."""
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    """The static background's Gaussians."""
    background_inpainting: DiffusionInpaintConfig = field(default_factory=DiffusionInpaintConfig)
    """Learned inpainting of never-seen background (used when its weights are found; else OpenCV)."""
    compose: ComposeConfig = field(default_factory=lambda: ComposeConfig())
    """Placement of the objects in one world and interaction refinement."""
    views: NovelViewConfig = field(default_factory=NovelViewConfig)
    """Novel-view videos."""
    export: ExportConfig = field(default_factory=ExportConfig)
    """Standard files (PLY, transforms.json, COLMAP text)."""
    holdout_every: int = 0
    """Hide every n-th frame (frames n-1, 2n-1, ...) from every stage that fits to the frames: the object fits,
    the background, the objects' placement and the composition's refinement (for evaluation; 0 hides none).
    Masks, tracks, cameras and depth are still estimated on every frame."""


@dataclass
class PipelineInputs:
    """What the user handed in.

    Attributes:
        video: a video file or a folder of frames.
        masks: optional folder of per-object masks (DAVIS layout).
        prompts: optional JSON of point/box prompts per object for the learned segmenters.
        edits: optional JSON of scene edits (remove, move, rotate, scale, time shift; ``compose.edits``).
    """

    video: Path
    masks: Path | None = None
    prompts: Path | None = None
    edits: Path | None = None


@dataclass
class Stage:
    """One step of the pipeline.

    Attributes:
        name: stage name, as recorded in the manifest and accepted by ``--stages``.
        group: the part of the pipeline it belongs to (``preprocess``, ``fit``, ``compose``).
        depends_on: stages whose outputs it reads.
        settings: everything that changes its outputs (config sections, input paths).
        run: does the work for the given inputs and run directory.
    """

    name: str
    group: str
    depends_on: tuple[str, ...]
    settings: Callable[[PipelineConfig, PipelineInputs], dict]
    run: Callable[[PipelineInputs, PipelineConfig, RunDir], StageResult]


def _path(path: Path | None) -> str | None:
    return None if path is None else str(path.resolve())


STAGES: tuple[Stage, ...] = (
    Stage("decode", "preprocess", (),
          lambda c, i: {"input": _path(i.video), "video": to_dict(c.video)}, stages.decode),
    Stage("masks", "preprocess", ("decode",),
          lambda c, i: {"masks_dir": _path(i.masks), "prompts": _path(i.prompts),
                        "masks": to_dict(c.preprocess.masks), "learned": to_dict(c.preprocess.learned)},
          stages.masks),
    Stage("tracks", "preprocess", ("decode", "masks"),
          lambda c, i: {"tracks": to_dict(c.preprocess.tracks), "cotracker": to_dict(c.preprocess.learned.cotracker)},
          stages.tracks),
    Stage("cameras", "preprocess", ("decode", "masks"),
          lambda c, i: {"cameras": to_dict(c.preprocess.cameras)}, stages.cameras),
    Stage("depth", "preprocess", ("decode", "masks", "tracks", "cameras"),
          lambda c, i: {"depth": to_dict(c.preprocess.depth),
                        "depth_anything": to_dict(c.preprocess.learned.depth_anything)}, stages.depth),
    Stage("fit", "fit", ("decode", "masks", "tracks", "cameras", "depth"),
          lambda c, i: {"fit": to_dict(c.fit), "holdout_every": c.holdout_every}, stages.fit_objects),
    Stage("background", "fit", ("decode", "masks", "cameras", "depth"),
          lambda c, i: {"background": to_dict(c.background), "inpainting": to_dict(c.background_inpainting),
                        "holdout_every": c.holdout_every}, stages.background),
    Stage("compose", "compose", ("fit", "background"),
          lambda c, i: {"compose": to_dict(c.compose), "edits": _path(i.edits), "holdout_every": c.holdout_every},
          stages.compose_scene),
    Stage("views", "compose", ("compose",), lambda c, i: {"views": to_dict(c.views)}, stages.views),
    Stage("export", "compose", ("compose",), lambda c, i: {"export": to_dict(c.export)}, stages.export),
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
