"""User-given object masks in the DAVIS layouts, matched to the frames of a clip.

Three layouts are read (any image format OpenCV/Pillow reads; PNG in practice):

- ``<dir>/<object>/<frame>.png``: one folder per object, any nonzero pixel is the object. A numeric folder
  name is the object id (``001`` is id 1); otherwise ids are 1, 2, ... in sorted folder order.
- ``<dir>/<frame>.png`` with a palette (indexed) PNG: every nonzero palette index is an object id.
- ``<dir>/<frame>.png`` otherwise (gray, RGB): a single object (id 1), any nonzero pixel.

Mask files are matched to frames by file stem when the frames came from a folder of images (stems of the sorted
image list, indexed by ``Frames.frame_indices``), and otherwise by order: the k-th mask file (sorted naturally)
labels the k-th decoded frame of the video. Masks of frames that the video settings skipped (stride, time
range) are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from scene4d.contracts.frames import Frames
from scene4d.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
ASPECT_TOLERANCE = 0.02


@dataclass
class GivenMasks:
    """User masks on some frames of a clip, at the frames' size.

    Attributes:
        labels: (K, H, W) int32 label maps of the annotated frames (0 background, else an object id).
        frames: (K,) increasing indices ``t`` of the annotated frames in the clip.
        object_ids: ids >= 1 present in the masks, sorted.
        names: one name per id (the folder name in the per-object layout).
    """

    labels: np.ndarray
    frames: np.ndarray
    object_ids: list[int]
    names: list[str]

    def covers(self, num_frames: int) -> bool:
        """Whether every frame of a clip of ``num_frames`` frames is annotated."""
        return bool(np.array_equal(self.frames, np.arange(num_frames)))


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _images_in(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=_natural_key)


def _read_binary(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"masks: cannot read {path}")
    if image.ndim == 3:
        image = image.max(axis=2)
    return image > 0


def _read_labels(path: Path) -> np.ndarray:
    """Palette PNG: palette indices are ids; any other image: nonzero is object 1."""
    try:
        with Image.open(path) as image:
            if image.mode == "P":
                return np.asarray(image, dtype=np.int32)
    except OSError as exc:
        raise InputError(f"masks: cannot read {path}: {exc}") from None
    return _read_binary(path).astype(np.int32)


def _images_stems(folder: Path) -> list[str]:
    return [p.stem for p in _images_in(folder)]


def _match(stems: list[str], frames: Frames, folder: Path) -> dict[str, int]:
    """Map mask stems to clip frame indices ``t``; masks of frames the clip skipped are left out."""
    source = Path(frames.source) if frames.source else None
    if source is not None and source.is_dir():
        folder_stems = _images_stems(source)
        known = set(folder_stems)
        if any(s in known for s in stems):
            if len(stems) > len(folder_stems):
                raise InputError(f"masks: {len(stems)} frames, video has {len(folder_stems)}")
            unknown = [s for s in stems if s not in known]
            if unknown:
                raise InputError(f"masks: {unknown[0]} in {folder} matches no frame of {source}")
            selected = {folder_stems[i]: t for t, i in enumerate(frames.frame_indices) if i < len(folder_stems)}
            return {s: selected[s] for s in stems if s in selected}
    whole_clip = np.array_equal(frames.frame_indices, np.arange(frames.num_frames))
    if whole_clip and len(stems) > frames.num_frames:
        raise InputError(f"masks: {len(stems)} frames, video has {frames.num_frames}")
    position = {int(i): t for t, i in enumerate(frames.frame_indices)}
    return {s: position[k] for k, s in enumerate(stems) if k in position}


def _resize_labels(labels: np.ndarray, size: tuple[int, int], path: Path) -> np.ndarray:
    height, width = labels.shape
    if (width, height) == size:
        return labels
    if abs(width / height - size[0] / size[1]) > ASPECT_TOLERANCE * size[0] / size[1]:
        raise InputError(f"masks: {path.name} is {width}x{height}, video frames are {size[0]}x{size[1]} "
                         "(different aspect ratio)")
    return cv2.resize(labels.astype(np.uint16), size, interpolation=cv2.INTER_NEAREST).astype(np.int32)


def load_given_masks(folder: str | Path, frames: Frames) -> GivenMasks:
    """Read user masks from ``folder`` (layouts in the module docstring) and match them to ``frames``.

    Args:
        folder: the mask folder.
        frames: the clip the masks label.

    Returns:
        :class:`GivenMasks` at the frames' size, for the annotated frames that are in the clip.

    Raises:
        InputError: no mask files, unreadable files, a different aspect ratio, more mask frames than video
            frames, a mask stem matching no frame, an object missing a frame the others have, an object with no
            pixels, or no annotated frame among the selected frames.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"masks: {folder} is not a folder")
    object_dirs = sorted((p for p in folder.iterdir() if p.is_dir() and _images_in(p)), key=_natural_key)
    size = (frames.width, frames.height)
    if object_dirs:
        per_object = [{p.stem: p for p in _images_in(d)} for d in object_dirs]
        stems = sorted(set().union(*per_object), key=lambda s: _natural_key(Path(s)))
        for directory, files in zip(object_dirs, per_object):
            missing = [s for s in stems if s not in files]
            if missing:
                raise InputError(f"masks: object folder {directory.name} has no mask for frame {missing[0]} "
                                 "(other objects have one)")
        numeric = all(d.name.isdigit() and int(d.name) > 0 for d in object_dirs)
        ids = [int(d.name) for d in object_dirs] if numeric else list(range(1, len(object_dirs) + 1))
        if len(set(ids)) != len(ids):
            raise InputError(f"masks: object folders {[d.name for d in object_dirs]} repeat an id")
        names = [d.name for d in object_dirs]
        matched = _match(stems, frames, folder)
        labels = {}
        for stem, t in matched.items():
            label = np.zeros((frames.height, frames.width), np.int32)
            for object_id, files in zip(ids, per_object):
                label[_resize_labels(_read_binary(files[stem]).astype(np.int32), size, files[stem]) > 0] = object_id
            labels[t] = label
    else:
        files = _images_in(folder)
        if not files:
            raise InputError(f"masks: no mask images in {folder} (expected <object>/<frame>.png or <frame>.png)")
        matched = _match([p.stem for p in files], frames, folder)
        by_stem = {p.stem: p for p in files}
        labels = {t: _resize_labels(_read_labels(by_stem[s]), size, by_stem[s]) for s, t in matched.items()}
        ids = sorted({int(i) for label in labels.values() for i in np.unique(label) if i > 0})
        names = [f"object_{i}" for i in ids]
    if not labels:
        raise InputError(f"masks: none of the mask frames in {folder} is among the selected video frames")
    order = sorted(labels)
    stack = np.stack([labels[t] for t in order])
    for object_id in ids:
        if not (stack == object_id).any():
            raise InputError(f"masks: object {object_id} has no pixels in any mask frame")
    if not ids:
        raise InputError(f"masks: the masks in {folder} are empty (no nonzero pixel)")
    return GivenMasks(labels=stack, frames=np.asarray(order, dtype=np.int64), object_ids=ids, names=names)
