"""Decoded video frames.

On disk (``<run>/frames/``)::

    frames/00000.png ... frames/<T-1>.png   RGB, 8 bit
    frames/frames.json                       {"num_frames", "width", "height", "timestamps", "fps",
                                              "source", "source_size", "frame_indices"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from scene4d.atomic import atomic_directory
from scene4d.errors import InputError

META_FILE = "frames.json"


@dataclass
class Frames:
    """A clip of RGB frames.

    Attributes:
        images: (T, H, W, 3) uint8 RGB.
        timestamps: (T,) seconds since the start of the source (strictly increasing).
        source: where the frames came from (a path), for the record.
        source_size: ``(width, height)`` of the source before resizing.
        frame_indices: (T,) index of each frame in the decoded source, before stride.
        fps: nominal frame rate of the source, if it has one.
    """

    images: np.ndarray
    timestamps: np.ndarray
    source: str = ""
    source_size: tuple[int, int] = (0, 0)
    frame_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fps: float | None = None

    def __post_init__(self) -> None:
        if len(self.frame_indices) == 0 and self.images.ndim == 4:
            self.frame_indices = np.arange(self.images.shape[0], dtype=np.int64)
        self.validate()

    @property
    def num_frames(self) -> int:
        return self.images.shape[0]

    @property
    def height(self) -> int:
        return self.images.shape[1]

    @property
    def width(self) -> int:
        return self.images.shape[2]

    def take_frames(self, frames: list[int]) -> "Frames":
        """The clip reduced to ``frames`` (increasing indices)."""
        return replace(self, images=self.images[frames], timestamps=self.timestamps[frames],
                       frame_indices=self.frame_indices[frames])

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first inconsistency."""
        if self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise InputError(f"frames: expected images (T, H, W, 3), got {self.images.shape}")
        if self.images.dtype != np.uint8:
            raise InputError(f"frames: expected uint8 images, got {self.images.dtype}")
        if self.num_frames == 0:
            raise InputError("frames: the clip has no frames")
        if self.timestamps.shape != (self.num_frames,):
            raise InputError(f"frames: {self.num_frames} images but {len(self.timestamps)} timestamps")
        if self.frame_indices.shape != (self.num_frames,):
            raise InputError(f"frames: {self.num_frames} images but {len(self.frame_indices)} frame indices")
        if self.num_frames > 1 and not np.all(np.diff(self.timestamps) > 0):
            raise InputError("frames: timestamps are not strictly increasing")

    def save(self, folder: str | Path) -> None:
        """Write the layout above atomically (the folder appears complete or not at all)."""
        with atomic_directory(folder) as tmp:
            for t, image in enumerate(self.images):
                cv2.imwrite(str(tmp / f"{t:05d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            meta = {
                "num_frames": self.num_frames,
                "width": self.width,
                "height": self.height,
                "timestamps": [float(x) for x in self.timestamps],
                "fps": self.fps,
                "source": self.source,
                "source_size": list(self.source_size),
                "frame_indices": [int(i) for i in self.frame_indices],
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> "Frames":
        """Read frames written by :meth:`save`."""
        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise InputError(f"frames: {meta_path} is missing")
        meta = json.loads(meta_path.read_text())
        images = []
        for t in range(meta["num_frames"]):
            bgr = cv2.imread(str(folder / f"{t:05d}.png"), cv2.IMREAD_COLOR)
            if bgr is None:
                raise InputError(f"frames: cannot read {folder / f'{t:05d}.png'}")
            images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        return cls(
            images=np.stack(images),
            timestamps=np.asarray(meta["timestamps"], dtype=np.float64),
            source=meta["source"],
            source_size=tuple(meta["source_size"]),
            frame_indices=np.asarray(meta["frame_indices"], dtype=np.int64),
            fps=meta["fps"],
        )
