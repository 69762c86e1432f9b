"""The preprocessing stages as the pipeline runs them: each picks its backend (``auto``: a learned one when
its weights are present, the weight-free one otherwise) and says which ran and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from preprocess.cameras.config import CamerasConfig
from preprocess.cameras.estimate import CameraEstimate, estimate_camera_motion
from preprocess.depth import DepthConfig, estimate_depth
from preprocess.learned import cotracker, depth_anything, sam, sam2_video
from preprocess.learned.prompts import check_prompts, load_prompts
from preprocess.masks.config import MasksConfig
from preprocess.masks.segment import LearnedSegmenter, segment_objects
from preprocess.tracks import TracksConfig, track_points
from scene4d.contracts.cameras import Cameras
from scene4d.contracts.depth import DepthMaps
from scene4d.contracts.frames import Frames
from scene4d.contracts.masks import ObjectMasks
from scene4d.contracts.tracks import PointTracks


@dataclass
class LearnedConfig:
    """Where the learned backends find their weights (local paths or model ids in the user's cache)."""

    sam: sam.SamBackendConfig = field(default_factory=sam.SamBackendConfig)
    """Segment Anything (first-frame masks from prompts, then propagated)."""
    sam2: sam2_video.Sam2VideoBackendConfig = field(default_factory=sam2_video.Sam2VideoBackendConfig)
    """SAM2 video propagation from prompts."""
    depth_anything: depth_anything.DepthAnythingBackendConfig = field(
        default_factory=depth_anything.DepthAnythingBackendConfig)
    """Depth Anything (v1/v2) through transformers."""
    cotracker: cotracker.CoTrackerBackendConfig = field(default_factory=cotracker.CoTrackerBackendConfig)
    """CoTracker (needs the official package installed)."""


@dataclass
class PreprocessConfig:
    """Settings of every preprocessing stage."""

    masks: MasksConfig = field(default_factory=MasksConfig)
    """Object masks: given, propagated, motion-segmented or learned."""
    tracks: TracksConfig = field(default_factory=TracksConfig)
    """Long-term 2D point tracks."""
    cameras: CamerasConfig = field(default_factory=CamerasConfig)
    """Camera intrinsics and motion."""
    depth: DepthConfig = field(default_factory=DepthConfig)
    """Per-frame depth."""
    learned: LearnedConfig = field(default_factory=LearnedConfig)
    """Learned backends' weights."""


def run_masks(frames: Frames, config: PreprocessConfig, masks_dir: Path | None, prompts_path: Path | None
              ) -> tuple[ObjectMasks | None, str, str]:
    """Object masks (None when nothing moves), the backend that ran, and why."""
    learned = {}
    if prompts_path is not None:
        prompts = load_prompts(prompts_path)
        check_prompts(prompts, frames.num_frames, frames.width, frames.height)
        learned["sam2"] = LearnedSegmenter(
            available=lambda: sam2_video.available(config.learned.sam2),
            run=lambda f: (sam2_video.track_objects_sam2(f, prompts, config.learned.sam2), "SAM2 video propagation"))
    return segment_objects(frames, config.masks, masks_dir, learned)


def run_tracks(frames: Frames, masks: ObjectMasks | None, config: PreprocessConfig
               ) -> tuple[PointTracks, str, str]:
    """Point tracks, the backend that ran, and why."""
    if config.tracks.backend == "auto":
        ok, reason = cotracker.available(config.learned.cotracker)
        if ok:
            return cotracker.track_points_cotracker(frames, masks, config.learned.cotracker), "cotracker", reason
        tracks, backend, why = track_points(frames, masks, config.tracks)
        return tracks, backend, f"auto: CoTracker unavailable ({reason}); {why}"
    return track_points(frames, masks, config.tracks)


def run_cameras(frames: Frames, masks: ObjectMasks | None, config: PreprocessConfig) -> CameraEstimate:
    """Cameras, the path that produced them and why, every attempt's checks, background tracks, SfM points."""
    return estimate_camera_motion(frames, masks, config.cameras)


def run_depth(frames: Frames, masks: ObjectMasks | None, cameras: Cameras, tracks: PointTracks | None,
              config: PreprocessConfig) -> tuple[DepthMaps, str, str]:
    """Depth maps, the backend that ran, and why.

    With Depth Anything, the weight-free stage's triangulated background (where the cameras translate) is
    used as sparse metric anchors so the learned depth shares the cameras' scale.
    """
    if config.depth.backend == "auto":
        ok, reason = depth_anything.available(config.learned.depth_anything)
        if ok:
            geometric, _, _ = estimate_depth(frames, masks, cameras, tracks, config.depth)
            sparse = None
            if geometric.method == "triangulation":
                sparse = np.where(geometric.confidence > 0.5, geometric.depth, 0.0).astype(np.float32)
            depth = depth_anything.estimate_depth_anything(frames, config.learned.depth_anything, sparse)
            return depth, "depth-anything", f"auto: {reason}"
        depth, backend, why = estimate_depth(frames, masks, cameras, tracks, config.depth)
        return depth, backend, f"auto: Depth Anything unavailable ({reason}); {why}"
    return estimate_depth(frames, masks, cameras, tracks, config.depth)
