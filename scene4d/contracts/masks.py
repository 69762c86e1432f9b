"""Per-object, per-frame binary masks with stable object ids (DAVIS-like layout).

On disk (``<run>/masks/``)::

    masks/<object_id>/00000.png ...   0/255 PNG per frame, one folder per object (ids >= 1; 0 is background)
    masks/objects.json                 {"num_frames", "width", "height", "method",
                                        "objects": [{"id", "name", "frames_visible", "mean_area"}]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from scene4d.atomic import atomic_directory
from scene4d.errors import InputError


@dataclass
class ObjectMasks:
    """Visible (modal) masks of each object in each frame; an object may be absent in some frames.

    Attributes:
        masks: (O, T, H, W) bool.
        object_ids: O distinct ids >= 1, in the order of ``masks``.
        names: O human-readable names (default ``object_<id>``).
        method: which backend produced them (``given``, ``motion``, ``sam2``, ...).
    """

    masks: np.ndarray
    object_ids: list[int]
    names: list[str] = field(default_factory=list)
    method: str = ""

    def __post_init__(self) -> None:
        self.masks = np.asarray(self.masks, dtype=bool)
        self.object_ids = [int(i) for i in self.object_ids]
        if not self.names:
            self.names = [f"object_{i}" for i in self.object_ids]
        self.validate()

    @property
    def num_objects(self) -> int:
        return self.masks.shape[0]

    @property
    def num_frames(self) -> int:
        return self.masks.shape[1]

    def take_frames(self, frames: list[int]) -> "ObjectMasks":
        """The masks of ``frames`` only."""
        return replace(self, masks=self.masks[:, frames])

    def of(self, object_id: int) -> np.ndarray:
        """(T, H, W) bool masks of one object."""
        return self.masks[self.object_ids.index(object_id)]

    def union(self) -> np.ndarray:
        """(T, H, W) bool: any object."""
        return self.masks.any(axis=0)

    def label_map(self) -> np.ndarray:
        """(T, H, W) int32 ids (0 background); where masks overlap the later object wins."""
        labels = np.zeros(self.masks.shape[1:], dtype=np.int32)
        for object_id, mask in zip(self.object_ids, self.masks):
            labels[mask] = object_id
        return labels

    def summary(self) -> list[dict]:
        """Per object: id, name, number of frames where it is visible, mean visible area in pixels."""
        rows = []
        for object_id, name, mask in zip(self.object_ids, self.names, self.masks):
            areas = mask.reshape(mask.shape[0], -1).sum(axis=1)
            visible = areas > 0
            rows.append({"id": object_id, "name": name, "frames_visible": int(visible.sum()),
                         "mean_area": float(areas[visible].mean()) if visible.any() else 0.0})
        return rows

    def validate(self, num_frames: int | None = None, size: tuple[int, int] | None = None) -> None:
        """Raise :class:`InputError` naming the first problem; optionally check against the video.

        Args:
            num_frames: the video's frame count, if known.
            size: the video's ``(width, height)``, if known.
        """
        if self.masks.ndim != 4:
            raise InputError(f"masks: expected (objects, T, H, W), got shape {self.masks.shape}")
        if len(self.object_ids) != self.masks.shape[0]:
            raise InputError(f"masks: {self.masks.shape[0]} mask stacks but {len(self.object_ids)} object ids")
        if len(set(self.object_ids)) != len(self.object_ids) or min(self.object_ids, default=1) < 1:
            raise InputError(f"masks: object ids must be distinct and >= 1, got {self.object_ids}")
        if len(self.names) != len(self.object_ids):
            raise InputError(f"masks: {len(self.object_ids)} objects but {len(self.names)} names")
        for object_id, mask in zip(self.object_ids, self.masks):
            if not mask.any():
                raise InputError(f"masks: object {object_id} has no pixels in any frame")
        if num_frames is not None and self.num_frames != num_frames:
            raise InputError(f"masks: {self.num_frames} frames, video has {num_frames}")
        if size is not None and (self.masks.shape[3], self.masks.shape[2]) != tuple(size):
            raise InputError(f"masks: {self.masks.shape[3]}x{self.masks.shape[2]} pixels, "
                             f"video is {size[0]}x{size[1]}")

    def save(self, folder: str | Path) -> None:
        with atomic_directory(folder) as tmp:
            for object_id, mask in zip(self.object_ids, self.masks):
                (tmp / str(object_id)).mkdir()
                for t, frame_mask in enumerate(mask):
                    cv2.imwrite(str(tmp / str(object_id) / f"{t:05d}.png"), frame_mask.astype(np.uint8) * 255)
            meta = {"num_frames": self.num_frames, "width": int(self.masks.shape[3]),
                    "height": int(self.masks.shape[2]), "method": self.method, "objects": self.summary()}
            (tmp / "objects.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> "ObjectMasks":
        folder = Path(folder)
        if not (folder / "objects.json").is_file():
            raise InputError(f"masks: {folder / 'objects.json'} is missing")
        meta = json.loads((folder / "objects.json").read_text())
        stacks = []
        for row in meta["objects"]:
            frames = [cv2.imread(str(folder / str(row["id"]) / f"{t:05d}.png"), cv2.IMREAD_GRAYSCALE)
                      for t in range(meta["num_frames"])]
            if any(f is None for f in frames):
                raise InputError(f"masks: missing frames for object {row['id']} in {folder}")
            stacks.append(np.stack(frames) > 127)
        return cls(masks=np.stack(stacks), object_ids=[r["id"] for r in meta["objects"]],
                   names=[r["name"] for r in meta["objects"]], method=meta["method"])
