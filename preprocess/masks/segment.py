"""The object-mask stage: per-object, per-frame masks with stable ids from the backend the config picks.

Backends: ``masks`` (user masks, propagated when they cover only some frames), ``motion`` (weight-free motion
segmentation) and learned ones (``sam``, ``sam2``) that the caller passes in as :class:`LearnedSegmenter`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import cv2
import numpy as np

from preprocess.masks.config import MasksConfig
from preprocess.masks.given import load_given_masks
from preprocess.masks.motion import segment_motion
from preprocess.masks.propagate import propagate_labels
from scene4d.contracts.frames import Frames
from scene4d.contracts.masks import ObjectMasks
from scene4d.errors import InputError

LEARNED_BACKENDS = ("sam2", "sam")
BACKENDS = ("auto", "masks", "motion") + LEARNED_BACKENDS


@dataclass
class LearnedSegmenter:
    """A learned backend wired in by the pipeline.

    Attributes:
        available: returns ``(ok, reason)``: whether its weights and package are present, and why (not).
        run: segments a clip; returns masks (or None when it finds no object) and a sentence about the result.
    """

    available: Callable[[], tuple[bool, str]]
    run: Callable[[Frames], tuple[ObjectMasks | None, str]]


def _resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.stack([cv2.resize(label.astype(np.uint16), size, interpolation=cv2.INTER_NEAREST)
                     for label in labels]).astype(np.int32)


def _from_given(frames: Frames, folder: Path, config: MasksConfig) -> tuple[ObjectMasks, str]:
    given = load_given_masks(folder, frames)
    count = f"{len(given.frames)} of {frames.num_frames} frames"
    if given.covers(frames.num_frames):
        labels, reason = given.labels, f"user masks from {folder} for every frame"
    else:
        scale = min(1.0, config.propagation.long_side / max(frames.width, frames.height))
        size = (max(1, round(frames.width * scale)), max(1, round(frames.height * scale)))
        images = np.stack([cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in frames.images]) \
            if scale < 1.0 else frames.images
        labels = propagate_labels(images, _resize_labels(given.labels, size), given.frames, given.object_ids,
                                  config.propagation)
        labels = _resize_labels(labels, (frames.width, frames.height))
        labels[given.frames] = given.labels
        reason = f"user masks from {folder} on {count}, propagated to the others (flow warping + GrabCut)"
    masks = np.stack([labels == object_id for object_id in given.object_ids])
    method = "given" if given.covers(frames.num_frames) else "given+propagated"
    return ObjectMasks(masks=masks, object_ids=given.object_ids, names=given.names, method=method), reason


def _from_motion(frames: Frames, config: MasksConfig) -> tuple[ObjectMasks | None, str]:
    masks, reason = segment_motion(frames.images, config.motion)
    if masks.shape[0] == 0:
        return None, reason
    return ObjectMasks(masks=masks, object_ids=list(range(1, masks.shape[0] + 1)), method="motion"), reason


def segment_objects(frames: Frames, config: MasksConfig | None = None, masks_dir: str | Path | None = None,
                    learned: Mapping[str, LearnedSegmenter] | None = None
                    ) -> tuple[ObjectMasks | None, str, str]:
    """Object masks of a clip from the configured backend.

    ``auto`` takes the user's masks when ``masks_dir`` is given, else the first available learned backend
    (``sam2``, then ``sam``) among ``learned``, else motion segmentation.

    Args:
        frames: the clip.
        config: backend choice and settings.
        masks_dir: folder of user masks (layouts in :mod:`preprocess.masks.given`), if any.
        learned: learned backends by name (``sam``, ``sam2``).

    Returns:
        ``(masks, backend, reason)``: masks of shape (O, T, H, W) at the frames' size with ids >= 1, or None
        when no object was found (the whole frame is background); the backend that ran; a sentence saying why
        that backend and what it found.

    Raises:
        InputError: an unknown backend, ``masks`` without a folder, a learned backend that is missing or has no
            weights, or bad user masks.
    """
    config = config or MasksConfig()
    learned = learned or {}
    if config.backend not in BACKENDS:
        raise InputError(f"masks.backend must be one of {', '.join(BACKENDS)}, got {config.backend!r}")
    backend = config.backend
    why = f"masks.backend={backend}"
    if backend == "auto":
        if masks_dir is not None:
            backend, why = "masks", "a mask folder was given"
        else:
            backend, why = "motion", "no mask folder and no learned segmenter with weights"
            for name in LEARNED_BACKENDS:
                if name in learned and learned[name].available()[0]:
                    backend, why = name, f"no mask folder; {name} weights are available"
                    break
    if backend == "masks":
        if masks_dir is None:
            raise InputError("masks.backend=masks needs a mask folder (--masks DIR)")
        masks, found = _from_given(frames, Path(masks_dir), config)
    elif backend == "motion":
        masks, found = _from_motion(frames, config)
    else:
        if backend not in learned:
            raise InputError(f"masks.backend={backend} is not available in this installation")
        ok, reason = learned[backend].available()
        if not ok:
            raise InputError(f"masks.backend={backend}: {reason}")
        masks, found = learned[backend].run(frames)
    if masks is not None:
        masks.validate(num_frames=frames.num_frames, size=(frames.width, frames.height))
    return masks, backend, f"{why}; {found}"
