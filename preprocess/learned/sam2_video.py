"""SAM2 video propagation through transformers: prompted objects tracked over the whole clip.

The checkpoint is a transformers ``Sam2VideoModel`` (folder in the ``save_pretrained`` layout with the
``Sam2VideoProcessor`` files, or a model id in the Hugging Face cache such as ``facebook/sam2.1-hiera-tiny``).

Each object is prompted on its own frame (:class:`~preprocess.learned.prompts.ObjectPrompt`, converted to SAM's
pixel-index convention); prompts are added in frame order, each followed by a forward pass on its frame, then
the session propagates forward from the earliest prompted frame to the end and backward from it to frame 0.
Masks are the processor's upsampled logits above ``mask_threshold``; where SAM2's object score says the object is
absent its logits are very negative, so occluded frames come out empty.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np
import torch

from preprocess.learned.prompts import ObjectPrompt, check_prompts, to_sam_box, to_sam_points
from preprocess.learned.weights import (WeightsUnavailable, from_pretrained_strict, locate_pretrained, pick_device,
                                        processor_from_pretrained)
from scene4d.contracts.frames import Frames
from scene4d.contracts.masks import ObjectMasks


@dataclass
class Sam2VideoBackendConfig:
    """SAM2 video backend settings."""

    checkpoint: str = "facebook/sam2.1-hiera-tiny"
    """A transformers folder in the ``save_pretrained`` layout, or a Hugging Face model id found in the cache."""
    allow_download: bool = False
    """Download a model id missing from the cache (needs network; off by default, never in tests)."""
    cache_dir: str = ""
    """Hugging Face cache folder to look in; empty for the default one."""
    device: str = "auto"
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ..."""
    mask_threshold: float = 0.0
    """Mask logits above this are the object."""
    frames_on_cpu: bool = True
    """Keep the preprocessed clip in CPU memory (a 1024 px float frame is 12 MB) and move frames as needed."""


class Sam2VideoTracker:
    """Holds a transformers ``Sam2VideoModel`` and its ``Sam2VideoProcessor``.

    Attributes:
        model, processor: the network (eval mode) and its pre/post-processing.
        device: where the model runs.
        mask_threshold: logits above it are the object.
        frames_on_cpu: where the session keeps the preprocessed frames.
    """

    def __init__(self, model, processor, device: torch.device | str = "cpu", mask_threshold: float = 0.0,
                 frames_on_cpu: bool = True) -> None:
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = torch.device(device)
        self.mask_threshold = mask_threshold
        self.frames_on_cpu = frames_on_cpu

    @torch.inference_mode()
    def track(self, images: np.ndarray, prompts: list[ObjectPrompt]) -> np.ndarray:
        """Masks of every prompted object in every frame.

        Args:
            images: (T, H, W, 3) uint8 RGB.
            prompts: one per object, distinct ids, frames in ``[0, T)``.

        Returns:
            (O, T, H, W) bool, objects in the order of ``prompts``.
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"expected (T, H, W, 3) uint8 images, got {images.shape} {images.dtype}")
        num_frames, height, width = images.shape[:3]
        session = self.processor.init_video_session(
            video=list(images), inference_device=self.device,
            video_storage_device="cpu" if self.frames_on_cpu else self.device)
        for prompt in sorted(prompts, key=lambda p: p.frame):
            kwargs = {}
            if len(prompt.points):
                kwargs["input_points"] = [[to_sam_points(prompt.points).tolist()]]
                kwargs["input_labels"] = [[prompt.labels.tolist()]]
            if prompt.box is not None:
                kwargs["input_boxes"] = [[to_sam_box(prompt.box).tolist()]]
            self.processor.add_inputs_to_inference_session(
                inference_session=session, frame_idx=prompt.frame, obj_ids=prompt.object_id, **kwargs)
            self.model(inference_session=session, frame_idx=prompt.frame)

        row = {p.object_id: k for k, p in enumerate(prompts)}
        masks = np.zeros((len(prompts), num_frames, height, width), dtype=bool)
        start = min(p.frame for p in prompts)
        for reverse in (False, True):
            for output in self.model.propagate_in_video_iterator(session, start_frame_idx=start, reverse=reverse):
                frame_masks = self.processor.post_process_masks(
                    [output.pred_masks.float().cpu()], original_sizes=[[height, width]],
                    mask_threshold=self.mask_threshold, binarize=True)[0][:, 0]
                for object_id, mask in zip(output.object_ids, frame_masks):
                    masks[row[object_id], output.frame_idx] = mask.numpy()
        return masks


def available(config: Sam2VideoBackendConfig) -> tuple[bool, str]:
    """Whether :func:`build_sam2_video` can run here, and why (not)."""
    if importlib.util.find_spec("transformers") is None:
        return False, "the transformers package is not installed"
    import transformers

    if not hasattr(transformers, "Sam2VideoModel"):
        return False, f"transformers {transformers.__version__} has no Sam2VideoModel (needs >= 4.56)"
    try:
        folder = locate_pretrained(config.checkpoint, False, config.cache_dir)
    except WeightsUnavailable as error:
        if config.allow_download and config.checkpoint:
            return True, f"{config.checkpoint} will be downloaded"
        return False, f"SAM2 weights: {error}"
    return True, f"SAM2 weights at {folder}"


def build_sam2_video(config: Sam2VideoBackendConfig) -> Sam2VideoTracker:
    """Load the configured checkpoint strictly.

    Raises:
        WeightsUnavailable: weights not found, or not matching the model.
    """
    from transformers import Sam2VideoModel, Sam2VideoProcessor

    folder = locate_pretrained(config.checkpoint, config.allow_download, config.cache_dir)
    processor = processor_from_pretrained(Sam2VideoProcessor, folder)
    model = from_pretrained_strict(Sam2VideoModel, folder)
    return Sam2VideoTracker(model, processor, pick_device(config.device), config.mask_threshold,
                            config.frames_on_cpu)


def track_objects_sam2(frames: Frames, prompts: list[ObjectPrompt], config: Sam2VideoBackendConfig,
                       tracker: Sam2VideoTracker | None = None) -> ObjectMasks:
    """Per-object, per-frame masks with the prompts' ids and names.

    Args:
        frames: the clip.
        prompts: objects to track (checked against the clip).
        config: backend settings.
        tracker: a built tracker (default: :func:`build_sam2_video` of ``config``).

    Raises:
        InputError: a prompt outside the clip or the frame, or an object SAM2 found in no frame.
    """
    check_prompts(prompts, frames.num_frames, frames.width, frames.height)
    tracker = tracker or build_sam2_video(config)
    masks = tracker.track(frames.images, prompts)
    return ObjectMasks(masks, [p.object_id for p in prompts], [p.name for p in prompts], method="sam2")
