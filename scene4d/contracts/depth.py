"""Per-frame depth in one consistent scale across the clip, with a confidence map.

On disk (``<run>/depth/``)::

    depth/depth.npy        (T, H, W) float32 camera-space z (same units as the cameras' translations)
    depth/confidence.npy   (T, H, W) float32 in [0, 1]; 0 where the depth is unknown
    depth/depth.json       {"num_frames", "width", "height", "method", "metric", "notes"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from scene4d.atomic import atomic_directory
from scene4d.errors import InputError


@dataclass
class DepthMaps:
    """Depth along the optical axis for every frame.

    Attributes:
        depth: (T, H, W) float32, positive where ``confidence > 0``.
        confidence: (T, H, W) float32 in [0, 1].
        method: backend that produced it (``depth-anything``, ``geometry``, ``scene-prior``, ...).
        metric: True when the scale is metric (or tied to the cameras), False when only relative.
        notes: assumptions the backend made, for the report.
    """

    depth: np.ndarray
    confidence: np.ndarray
    method: str = ""
    metric: bool = False
    notes: str = ""

    def __post_init__(self) -> None:
        self.depth = np.asarray(self.depth, dtype=np.float32)
        self.confidence = np.asarray(self.confidence, dtype=np.float32)
        self.validate()

    @property
    def num_frames(self) -> int:
        return self.depth.shape[0]

    def take_frames(self, frames: list[int]) -> "DepthMaps":
        """The depth of ``frames`` only."""
        return replace(self, depth=self.depth[frames], confidence=self.confidence[frames])

    def validate(self, num_frames: int | None = None, size: tuple[int, int] | None = None) -> None:
        """Raise :class:`InputError` naming the first problem; optionally check against the video."""
        if self.depth.ndim != 3:
            raise InputError(f"depth: expected (T, H, W), got {self.depth.shape}")
        if self.confidence.shape != self.depth.shape:
            raise InputError(f"depth: confidence {self.confidence.shape} does not match depth {self.depth.shape}")
        if not np.isfinite(self.depth).all():
            raise InputError("depth: non-finite values")
        if np.any((self.confidence < 0) | (self.confidence > 1)):
            raise InputError("depth: confidence outside [0, 1]")
        if np.any(self.depth[self.confidence > 0] <= 0):
            raise InputError("depth: non-positive depth where confidence > 0")
        if num_frames is not None and self.num_frames != num_frames:
            raise InputError(f"depth: {self.num_frames} frames, video has {num_frames}")
        if size is not None and (self.depth.shape[2], self.depth.shape[1]) != tuple(size):
            raise InputError(f"depth: {self.depth.shape[2]}x{self.depth.shape[1]} pixels, "
                             f"video is {size[0]}x{size[1]}")

    def save(self, folder: str | Path) -> None:
        with atomic_directory(folder) as tmp:
            np.save(tmp / "depth.npy", self.depth)
            np.save(tmp / "confidence.npy", self.confidence)
            meta = {"num_frames": self.num_frames, "width": int(self.depth.shape[2]),
                    "height": int(self.depth.shape[1]), "method": self.method, "metric": self.metric,
                    "notes": self.notes}
            (tmp / "depth.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> "DepthMaps":
        folder = Path(folder)
        if not (folder / "depth.json").is_file():
            raise InputError(f"depth: {folder / 'depth.json'} is missing")
        meta = json.loads((folder / "depth.json").read_text())
        return cls(depth=np.load(folder / "depth.npy"), confidence=np.load(folder / "confidence.npy"),
                   method=meta["method"], metric=meta["metric"], notes=meta["notes"])
