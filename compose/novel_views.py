"""The standard set of novel-view videos of a composed scene.

Written into one folder, each an H.264 mp4 (see :mod:`compose.video_writer`)::

    input.mp4          the whole scene along the input camera path
    fixed.mp4          a stabilised video: one input camera held while time runs
    orbit.mp4          an orbit around the scene centre at a frozen time
    bullet_time.mp4    time frozen, the camera sweeping an arc
    path.mp4           the camera path of a JSON file (only when ``camera_path`` is set)
    object_<id>.mp4    each visible object alone, along the input path
    background.mp4     the background alone, along the input path (when the scene has one)
    depth.mp4          expected depth of the whole scene along the input path (turbo, near = red)
    ids.mp4            the object in front at each pixel along the input path (the masks' colours)

The scene centre for orbits is the median position of the visible objects' Gaussians at the frozen time
(of the background's when there is no object); "up" is :func:`compose.camera_paths.world_up` of the input.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from compose import camera_paths
from compose.camera_paths import CameraPath
from compose.scene import Scene
from compose.video_writer import VideoWriter, colorize_depth, colorize_ids, depth_range, write_video
from scene4d.contracts.cameras import Cameras
from scene4d.errors import InputError

VIDEO_KINDS = ("input", "fixed", "orbit", "bullet_time", "objects", "background", "depth", "ids")


@dataclass
class NovelViewConfig:
    """Which novel-view videos to render and how."""

    videos: tuple[str, ...] = VIDEO_KINDS
    """Videos to write, any of ``VIDEO_KINDS`` (``objects`` writes one video per visible object)."""
    resolution_scale: float = 1.0
    """Image size relative to the input cameras' (intrinsics scaled to match)."""
    fps: float = 24.0
    """Frame rate of every video except the JSON path's, which sets its own."""
    frames_per_path: int = 96
    """Frames of the orbit and of the bullet-time video."""
    orbit_azimuth_deg: float = 360.0
    """Azimuth swept by the orbit; 360 loops seamlessly."""
    orbit_elevation_deg: tuple[float, float] = (0.0, 15.0)
    """Elevation at the orbit's start and half way round (it comes back by the end)."""
    bullet_time_azimuth_deg: float = 60.0
    """Arc swept by the bullet-time camera, centred on the input view."""
    frozen_time: float = 0.5
    """Normalised scene time of the orbit and bullet-time; their reference camera is the nearest input frame's."""
    fixed_frame: int = 0
    """Input frame whose camera the fixed (stabilised) video holds."""
    camera_path: str | None = None
    """A JSON camera path (schema: :func:`compose.camera_paths.path_from_json`) rendered as ``path.mp4``."""
    background_color: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """RGB in [0, 1] behind the Gaussians."""
    cameras_per_batch: int = 8
    """Cameras rendered together when they share a time (orbit, bullet-time)."""
    backend: str = "auto"
    """Rasterizer backend, as in :func:`scene4d.render.render.render`."""


@dataclass
class VideoFile:
    """One video written: ``name`` (file stem), ``path`` and ``num_frames``."""

    name: str
    path: Path
    num_frames: int


class PathFrame(NamedTuple):
    """One rendered frame: ``rgb`` (H, W, 3) uint8; ``depth`` (H, W) float32, 0 where nothing is drawn (alpha
    <= 0.5); ``ids`` (H, W) int64 object ids (0 background, -1 nothing) or None."""

    rgb: np.ndarray
    depth: np.ndarray
    ids: np.ndarray | None


def _check(config: NovelViewConfig, scene: Scene, cameras: Cameras) -> None:
    unknown = sorted(set(config.videos) - set(VIDEO_KINDS))
    if unknown:
        raise InputError(f"novel views: unknown videos {unknown} (choose from {list(VIDEO_KINDS)})")
    if cameras.num_frames != scene.num_frames:
        raise InputError(f"novel views: {cameras.num_frames} cameras for a scene of {scene.num_frames} frames")
    if config.resolution_scale <= 0 or config.fps <= 0:
        raise InputError(f"novel views: resolution_scale and fps must be > 0, got {config.resolution_scale} "
                         f"and {config.fps}")
    if config.frames_per_path < 1 or config.cameras_per_batch < 1:
        raise InputError("novel views: frames_per_path and cameras_per_batch must be >= 1")
    if not 0.0 <= config.frozen_time <= 1.0:
        raise InputError(f"novel views: frozen_time must be in [0, 1], got {config.frozen_time}")
    if not 0 <= config.fixed_frame < cameras.num_frames:
        raise InputError(f"novel views: fixed_frame must be in [0, {cameras.num_frames}), got {config.fixed_frame}")


def scene_center(scene: Scene, time: float) -> torch.Tensor:
    """(3,) median position of the visible objects' Gaussians at ``time`` (the background's if none)."""
    has_objects = any(obj.visible for obj in scene.objects)
    with torch.no_grad():
        posed = scene.posed(time, include_background=not has_objects)
    return posed.means.median(dim=0).values.cpu()


def standard_paths(scene: Scene, cameras: Cameras, config: NovelViewConfig
                   ) -> tuple[dict[str, CameraPath], float, int, int]:
    """The camera paths of the standard videos, at the configured resolution.

    Returns:
        ``(paths, path_fps, width, height)``: float32 paths keyed ``input``, ``fixed``, ``orbit``,
        ``bullet_time`` and, when ``config.camera_path`` is set, ``path`` (whose frame rate is ``path_fps``;
        ``config.fps`` otherwise).
    """
    _check(config, scene, cameras)
    viewmats = torch.from_numpy(cameras.viewmats).float()
    Ks, width, height = camera_paths.scale_intrinsics(torch.from_numpy(cameras.Ks).float(), cameras.width,
                                                      cameras.height, config.resolution_scale)
    up = camera_paths.world_up(viewmats)
    reference = round(config.frozen_time * (cameras.num_frames - 1))
    center = scene_center(scene, config.frozen_time)
    paths = {
        "input": camera_paths.input_path(viewmats, Ks),
        "fixed": camera_paths.fixed_path(viewmats, Ks, config.fixed_frame),
        "orbit": camera_paths.orbit_path(viewmats[reference], Ks[reference], center, up, config.frames_per_path,
                                         config.orbit_azimuth_deg, tuple(config.orbit_elevation_deg),
                                         config.frozen_time),
        "bullet_time": camera_paths.bullet_time_path(viewmats[reference], Ks[reference], center, up,
                                                     config.frames_per_path, config.frozen_time,
                                                     config.bullet_time_azimuth_deg),
    }
    path_fps = config.fps
    if config.camera_path is not None:
        fov = math.degrees(2.0 * math.atan(0.5 * height / float(Ks[reference, 1, 1])))
        path, path_fps = camera_paths.path_from_json(config.camera_path, width, height, up.double(), fov)
        paths["path"] = CameraPath(*(t.float() for t in path))
    return paths, path_fps, width, height


def render_path(scene: Scene, path: CameraPath, width: int, height: int,
                background_color: tuple[float, float, float] = (0.0, 0.0, 0.0), with_labels: bool = False,
                cameras_per_batch: int = 8, backend: str = "auto", **select) -> Iterator[PathFrame]:
    """Render a camera path frame by frame (cameras sharing a time are rendered together).

    Args:
        scene: the composed scene.
        path: F cameras and times.
        width, height: image size the intrinsics refer to.
        background_color: RGB in [0, 1].
        with_labels: also compute the per-pixel object ids.
        select: ``include_background`` / ``object_ids`` as in :meth:`compose.scene.Scene.posed`.

    Yields:
        F :class:`PathFrame`, in path order.
    """
    parts = ([scene.background] if scene.background is not None else []) + [o.model.gaussians for o in scene.objects]
    device = parts[0].device if parts else torch.device("cpu")
    viewmats, Ks = path.viewmats.to(device, torch.float32), path.Ks.to(device, torch.float32)
    times = path.times.tolist()
    background = torch.tensor(background_color, dtype=torch.float32, device=device)
    start = 0
    while start < len(times):
        stop = start + 1
        while stop < len(times) and stop - start < cameras_per_batch and times[stop] == times[start]:
            stop += 1
        with torch.no_grad():
            out, labels = scene.render(times[start], viewmats[start:stop], Ks[start:stop], width, height,
                                       backgrounds=background.expand(stop - start, 3), with_labels=with_labels,
                                       backend=backend, **select)
        rgb = (out.colors.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
        depth = torch.where(out.alphas[..., 0] > 0.5, out.depths[..., 0], 0.0).cpu().numpy()
        labels = None if labels is None else labels.cpu().numpy()
        for c in range(stop - start):
            yield PathFrame(rgb[c], depth[c], None if labels is None else labels[c])
        start = stop


def render_novel_views(scene: Scene, cameras: Cameras, folder: str | Path,
                       config: NovelViewConfig | None = None) -> list[VideoFile]:
    """Render the standard videos (module docstring) of ``scene`` seen by the input ``cameras`` into ``folder``.

    Each video is written atomically, with a progress bar while it renders.

    Args:
        scene: the composed scene; its ``num_frames`` must match the cameras'.
        cameras: the input cameras (T frames).
        folder: output folder (created).
        config: which videos and how (defaults when None).

    Returns:
        The videos written, in order, with their frame counts.
    """
    folder, config = Path(folder), config or NovelViewConfig()
    paths, path_fps, width, height = standard_paths(scene, cameras, config)
    render = dict(width=width, height=height, background_color=tuple(config.background_color),
                  cameras_per_batch=config.cameras_per_batch, backend=config.backend)
    written: list[VideoFile] = []

    def write(name: str, frames, fps: float = config.fps) -> None:
        num = write_video(folder / f"{name}.mp4", frames, fps)
        written.append(VideoFile(name, folder / f"{name}.mp4", num))

    def progress(name: str, path: CameraPath, **select) -> Iterator[PathFrame]:
        frames = render_path(scene, path, with_labels="ids" in config.videos and name == "input", **render,
                             **select)
        return tqdm(frames, total=path.times.shape[0], desc=f"video {name}", unit="frame", leave=False)

    whole = [kind for kind in ("input", "depth", "ids") if kind in config.videos]
    if whole:
        depths = []
        with ExitStack() as stack:
            writers = {kind: stack.enter_context(VideoWriter(folder / f"{kind}.mp4", config.fps))
                       for kind in ("input", "ids") if kind in whole}
            for frame in progress("input", paths["input"]):
                if "input" in writers:
                    writers["input"].write(frame.rgb)
                if "ids" in writers:
                    writers["ids"].write(colorize_ids(frame.ids))
                depths.append(frame.depth)
        written.extend(VideoFile(kind, writer.path, writer.num_frames) for kind, writer in writers.items())
        if "depth" in whole:
            near, far = depth_range(np.stack(depths))
            write("depth", (colorize_depth(d, near, far) for d in depths))
    for name in ("fixed", "orbit", "bullet_time"):
        if name in config.videos:
            write(name, (f.rgb for f in progress(name, paths[name])))
    if "path" in paths:
        write("path", (f.rgb for f in progress("path", paths["path"])), fps=path_fps)
    if "objects" in config.videos:
        for obj in scene.objects:
            if obj.visible:
                write(f"object_{obj.object_id}", (f.rgb for f in progress(
                    f"object_{obj.object_id}", paths["input"], include_background=False, object_ids=[obj.object_id])))
    if "background" in config.videos and scene.background is not None:
        write("background", (f.rgb for f in progress("background", paths["input"], object_ids=[])))
    return written
