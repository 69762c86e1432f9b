"""2D point tracks with visibility, labelled by the object they belong to (0 = background).

On disk (``<run>/tracks/``)::

    tracks/tracks.npz    tracks (N, T, 2) float32 pixel coordinates (centres at +0.5),
                         visibility (N, T) bool, labels (N,) int32
    tracks/tracks.json   {"num_tracks", "num_frames", "method", "per_label": {label: count}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scene4d.atomic import atomic_directory
from scene4d.errors import InputError


@dataclass
class PointTracks:
    """Long-term 2D tracks.

    Attributes:
        tracks: (N, T, 2) float32 ``(x, y)`` positions; meaningful where visible.
        visibility: (N, T) bool.
        labels: (N,) int32 object id of each track's point (0 for the background).
        method: backend that produced them (``cotracker``, ``flow``, ...).
    """

    tracks: np.ndarray
    visibility: np.ndarray
    labels: np.ndarray
    method: str = ""

    def __post_init__(self) -> None:
        self.tracks = np.asarray(self.tracks, dtype=np.float32)
        self.visibility = np.asarray(self.visibility, dtype=bool)
        self.labels = np.asarray(self.labels, dtype=np.int32)
        self.validate()

    @property
    def num_tracks(self) -> int:
        return self.tracks.shape[0]

    @property
    def num_frames(self) -> int:
        return self.tracks.shape[1]

    def select(self, keep: np.ndarray) -> "PointTracks":
        """Subset by a (N,) bool mask or index array."""
        return PointTracks(self.tracks[keep], self.visibility[keep], self.labels[keep], self.method)

    def of(self, label: int) -> "PointTracks":
        """The tracks of one object (or of the background, label 0)."""
        return self.select(self.labels == label)

    def validate(self, num_frames: int | None = None) -> None:
        """Raise :class:`InputError` naming the first problem; optionally check the frame count."""
        if self.tracks.ndim != 3 or self.tracks.shape[2] != 2:
            raise InputError(f"tracks: expected (N, T, 2), got {self.tracks.shape}")
        if self.visibility.shape != self.tracks.shape[:2]:
            raise InputError(f"tracks: visibility {self.visibility.shape} does not match tracks {self.tracks.shape[:2]}")
        if self.labels.shape != (self.tracks.shape[0],):
            raise InputError(f"tracks: {self.tracks.shape[0]} tracks but {self.labels.shape[0]} labels")
        if not np.isfinite(self.tracks[self.visibility]).all():
            raise InputError("tracks: non-finite positions where visible")
        if num_frames is not None and self.num_frames != num_frames:
            raise InputError(f"tracks: {self.num_frames} frames, video has {num_frames}")

    def save(self, folder: str | Path) -> None:
        with atomic_directory(folder) as tmp:
            np.savez(tmp / "tracks.npz", tracks=self.tracks, visibility=self.visibility, labels=self.labels)
            labels, counts = np.unique(self.labels, return_counts=True)
            meta = {"num_tracks": self.num_tracks, "num_frames": self.num_frames, "method": self.method,
                    "per_label": {str(int(k)): int(v) for k, v in zip(labels, counts)}}
            (tmp / "tracks.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> "PointTracks":
        folder = Path(folder)
        if not (folder / "tracks.npz").is_file():
            raise InputError(f"tracks: {folder / 'tracks.npz'} is missing")
        arrays = np.load(folder / "tracks.npz")
        meta = json.loads((folder / "tracks.json").read_text())
        return cls(arrays["tracks"], arrays["visibility"], arrays["labels"], meta["method"])
