"""Decode a video file (PyAV) or a folder of images into :class:`~scene4d.contracts.frames.Frames`."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from tqdm import tqdm

from scene4d.contracts.frames import Frames
from scene4d.errors import InputError

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".webm", ".avi", ".mkv"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
MAX_DECODED_BYTES = 8 * 2**30


@dataclass
class VideoConfig:
    """How frames are taken from the input."""

    stride: int = 1
    """Keep every ``stride``-th decoded frame."""
    max_frames: int = 0
    """Stop after this many kept frames (0: no limit)."""
    start_s: float = 0.0
    """Skip frames before this time, in seconds."""
    end_s: float = 0.0
    """Stop at this time, in seconds (0: the end)."""
    long_side: int = 0
    """Resize so the longer image side has this many pixels, keeping the aspect ratio (0: keep size)."""
    folder_fps: float = 30.0
    """Frame rate assumed for a folder of images, which carries no timing."""


def _check_config(config: VideoConfig) -> None:
    if config.stride < 1:
        raise InputError(f"video.stride must be >= 1, got {config.stride}")
    if config.max_frames < 0:
        raise InputError(f"video.max_frames must be >= 0, got {config.max_frames}")
    if config.long_side and not 16 <= config.long_side <= 8192:
        raise InputError(f"video.long_side must be 0 or in [16, 8192], got {config.long_side}")
    if config.end_s and config.end_s <= config.start_s:
        raise InputError(f"video.end_s ({config.end_s}) must be after video.start_s ({config.start_s})")
    if config.folder_fps <= 0:
        raise InputError(f"video.folder_fps must be positive, got {config.folder_fps}")


def resized_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """``(width, height)`` scaled so the longer side is ``long_side`` (unchanged when 0)."""
    if not long_side:
        return width, height
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == size:
        return image
    shrinking = size[0] < image.shape[1]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _rotate(image: np.ndarray, degrees: int) -> np.ndarray:
    """Apply display-matrix rotation (counter-clockwise degrees, as FFmpeg reports it)."""
    turns = (round(degrees / 90) % 4)
    return np.ascontiguousarray(np.rot90(image, k=turns)) if turns else image


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def load_frames(source: str | Path, config: VideoConfig | None = None) -> Frames:
    """Read a video file or an image folder, applying time range, stride, frame limit and resizing.

    Args:
        source: a video file (mp4, mov, webm, avi, mkv) or a folder of images (sorted by name, naturally).
        config: selection and resizing.

    Returns:
        :class:`Frames` with (T, H, W, 3) uint8 images and timestamps in seconds.

    Raises:
        InputError: missing or unreadable input, no frames, inconsistent image sizes, absurd sizes.
    """
    config = config or VideoConfig()
    _check_config(config)
    source = Path(source)
    if not source.exists():
        raise InputError(f"video: {source} does not exist")
    if source.is_dir():
        return _load_folder(source, config)
    if source.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"video: {source.name} is not a supported video ({', '.join(sorted(VIDEO_SUFFIXES))}) "
                         "or a folder of images")
    return _load_video(source, config)


def _load_folder(folder: Path, config: VideoConfig) -> Frames:
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
    if not files:
        raise InputError(f"video: folder {folder} contains no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    indices = np.arange(len(files))
    times = indices / config.folder_fps
    keep = times >= config.start_s
    if config.end_s:
        keep &= times < config.end_s
    indices = indices[keep][:: config.stride]
    if config.max_frames:
        indices = indices[: config.max_frames]
    if len(indices) == 0:
        raise InputError(f"video: no images of {folder} fall in the requested time range")
    images, source_size = [], None
    for i in tqdm(indices, desc="reading frames", unit="frame", leave=False):
        bgr = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"video: cannot read image {files[i]}")
        size = (bgr.shape[1], bgr.shape[0])
        if source_size is None:
            source_size = size
            target = resized_size(*size, config.long_side)
            _check_budget(target, len(indices))
        elif size != source_size:
            raise InputError(f"video: {files[i].name} is {size[0]}x{size[1]}, "
                             f"{files[indices[0]].name} is {source_size[0]}x{source_size[1]}")
        images.append(_resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), target))
    return Frames(images=np.stack(images), timestamps=indices / config.folder_fps, source=str(folder),
                  source_size=source_size, frame_indices=indices.astype(np.int64), fps=config.folder_fps)


def _check_budget(size: tuple[int, int], num_frames: int) -> None:
    width, height = size
    if width * height * 3 * num_frames > MAX_DECODED_BYTES:
        raise InputError(f"video: {num_frames} frames at {width}x{height} would need "
                         f"{width * height * 3 * num_frames / 2**30:.1f} GiB; "
                         "lower video.long_side or video.max_frames, or raise video.stride")


def _ffmpeg_reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


def _load_video(path: Path, config: VideoConfig) -> Frames:
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"video: cannot open {path} ({_ffmpeg_reason(exc)})") from None
    with container:
        if not container.streams.video:
            raise InputError(f"video: {path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate) if stream.average_rate else None
        if config.start_s > 0:
            container.seek(int(config.start_s / stream.time_base), stream=stream, backward=True)
        images, times, indices = [], [], []
        source_size, target = None, None
        kept = decoded = 0
        progress = tqdm(desc="decoding", unit="frame", total=stream.frames or None, leave=False)
        try:
            for frame in container.decode(stream):
                time = frame.time if frame.time is not None else decoded / (fps or config.folder_fps)
                index, decoded = decoded, decoded + 1
                progress.update(1)
                if time < config.start_s - 1e-6:
                    continue
                if config.end_s and time >= config.end_s:
                    break
                if (index - (indices[0] if indices else index)) % config.stride:
                    continue
                image = _rotate(frame.to_ndarray(format="rgb24"), frame.rotation or 0)
                if source_size is None:
                    source_size = (image.shape[1], image.shape[0])
                    target = resized_size(*source_size, config.long_side)
                    expected = stream.frames // config.stride if stream.frames else 1
                    _check_budget(target, min(expected, config.max_frames or expected) or 1)
                images.append(_resize(image, target))
                times.append(time)
                indices.append(index)
                kept += 1
                if config.max_frames and kept >= config.max_frames:
                    break
        except av.error.FFmpegError as exc:
            if not images:
                raise InputError(f"video: cannot decode {path} ({_ffmpeg_reason(exc)})") from None
            logger.warning("video: %s is damaged after %d frames (%s); using those frames", path, decoded,
                           _ffmpeg_reason(exc))
        finally:
            progress.close()
    if not images:
        raise InputError(f"video: no frames decoded from {path}")
    return Frames(images=np.stack(images), timestamps=np.asarray(times, dtype=np.float64), source=str(path),
                  source_size=source_size, frame_indices=np.asarray(indices, dtype=np.int64), fps=fps)
