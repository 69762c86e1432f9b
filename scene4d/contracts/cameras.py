"""Per-frame pinhole cameras (see ``scene4d.conventions``: OpenCV axes, world-to-camera, K in pixels).

On disk (``<run>/cameras/``)::

    cameras/cameras.npz    Ks (T, 3, 3) float64, viewmats (T, 4, 4) float64, width, height
    cameras/cameras.json   {"num_frames", "width", "height", "method", "notes"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from scene4d.atomic import atomic_directory
from scene4d.errors import InputError


@dataclass
class Cameras:
    """Intrinsics and world-to-camera extrinsics for every frame.

    Attributes:
        Ks: (T, 3, 3) intrinsics in pixels.
        viewmats: (T, 4, 4) world-to-camera matrices.
        width, height: image size the intrinsics refer to.
        method: how the cameras were obtained (e.g. ``colmap-global``, ``homography-rotation``, ``fixed``).
        notes: why that method was chosen, for the manifest and the report.
    """

    Ks: np.ndarray
    viewmats: np.ndarray
    width: int
    height: int
    method: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        self.Ks = np.asarray(self.Ks, dtype=np.float64)
        self.viewmats = np.asarray(self.viewmats, dtype=np.float64)
        self.validate()

    @property
    def num_frames(self) -> int:
        return self.Ks.shape[0]

    def take_frames(self, frames: list[int]) -> "Cameras":
        """The cameras of ``frames`` only."""
        return replace(self, Ks=self.Ks[frames], viewmats=self.viewmats[frames])

    @property
    def camtoworlds(self) -> np.ndarray:
        """(T, 4, 4) camera-to-world matrices."""
        return np.linalg.inv(self.viewmats)

    @property
    def centers(self) -> np.ndarray:
        """(T, 3) camera centres in world coordinates."""
        return self.camtoworlds[:, :3, 3]

    def validate(self, num_frames: int | None = None, size: tuple[int, int] | None = None) -> None:
        """Raise :class:`InputError` naming the first problem; optionally check against the video.

        Args:
            num_frames: the video's frame count, if known.
            size: the video's ``(width, height)``, if known.
        """
        t = self.Ks.shape[0] if self.Ks.ndim == 3 else -1
        if self.Ks.ndim != 3 or self.Ks.shape[1:] != (3, 3):
            raise InputError(f"cameras: expected Ks (T, 3, 3), got {self.Ks.shape}")
        if self.viewmats.shape != (t, 4, 4):
            raise InputError(f"cameras: expected viewmats ({t}, 4, 4), got {self.viewmats.shape}")
        if not (np.isfinite(self.Ks).all() and np.isfinite(self.viewmats).all()):
            raise InputError("cameras: non-finite values")
        if np.any(self.Ks[:, 0, 0] <= 0) or np.any(self.Ks[:, 1, 1] <= 0):
            raise InputError("cameras: focal lengths must be positive")
        if not np.allclose(self.viewmats[:, 3], [0.0, 0.0, 0.0, 1.0]):
            raise InputError("cameras: viewmats' last row must be (0, 0, 0, 1)")
        rotations = self.viewmats[:, :3, :3]
        if not np.allclose(rotations @ rotations.transpose(0, 2, 1), np.eye(3), atol=1e-5):
            raise InputError("cameras: viewmats' rotations are not orthonormal")
        if num_frames is not None and t != num_frames:
            raise InputError(f"cameras: {t} frames, video has {num_frames}")
        if size is not None and (self.width, self.height) != tuple(size):
            raise InputError(f"cameras: {self.width}x{self.height}, video is {size[0]}x{size[1]}")

    def save(self, folder: str | Path) -> None:
        with atomic_directory(folder) as tmp:
            np.savez(tmp / "cameras.npz", Ks=self.Ks, viewmats=self.viewmats,
                     width=self.width, height=self.height)
            meta = {"num_frames": self.num_frames, "width": self.width, "height": self.height,
                    "method": self.method, "notes": self.notes}
            (tmp / "cameras.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> "Cameras":
        folder = Path(folder)
        if not (folder / "cameras.npz").is_file():
            raise InputError(f"cameras: {folder / 'cameras.npz'} is missing")
        arrays = np.load(folder / "cameras.npz")
        meta = json.loads((folder / "cameras.json").read_text())
        return cls(Ks=arrays["Ks"], viewmats=arrays["viewmats"], width=int(arrays["width"]),
                   height=int(arrays["height"]), method=meta["method"], notes=meta["notes"])
