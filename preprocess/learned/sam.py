"""Segment Anything (SAM): one mask per prompted object on its prompted frame.

Two kinds of checkpoint are accepted:

- a transformers ``SamModel`` (folder in the ``save_pretrained`` layout with the ``SamProcessor`` files, or a model
  id in the Hugging Face cache such as ``facebook/sam-vit-base``);
- an original ``segment_anything`` checkpoint, a ``.pth`` file (``sam_vit_b_01ec64.pth`` ...); its variant (ViT-B,
  -L or -H) is read from the patch-embedding width and built with ``sam_model_registry``.

Prompts are :class:`~preprocess.learned.prompts.ObjectPrompt` (points and/or a box per object, our pixel
coordinates), converted to SAM's pixel-index convention. With ``multimask`` SAM proposes three masks per object
and the one with the highest predicted IoU is kept. The masks seed propagation over the clip (see ``sam2_video``
for a learned propagation).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from preprocess.learned.prompts import ObjectPrompt, check_prompts, to_sam_box, to_sam_points
from preprocess.learned.weights import (WeightsUnavailable, from_pretrained_strict, load_state_dict_strict,
                                        locate_file, locate_pretrained, pick_device, processor_from_pretrained,
                                        read_state_dict)
from scene4d.contracts.frames import Frames

_PATCH_EMBED_KEY = "image_encoder.patch_embed.proj.weight"
_VARIANT_BY_WIDTH = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
_TORCH_SUFFIXES = (".pth", ".pt")


@dataclass
class SamBackendConfig:
    """Segment Anything backend settings."""

    checkpoint: str = "facebook/sam-vit-base"
    """A transformers folder or Hugging Face model id, or a segment-anything ``.pth`` file."""
    allow_download: bool = False
    """Download a model id missing from the cache (needs network; off by default, never in tests)."""
    cache_dir: str = ""
    """Hugging Face cache folder to look in; empty for the default one."""
    device: str = "auto"
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ..."""
    multimask: bool = True
    """Ask for three candidate masks per object and keep the best-scored (helps single-point prompts)."""
    mask_threshold: float = 0.0
    """Mask logits above this are the object."""


@dataclass
class SegmentedObjects:
    """One mask per object, each on the frame it was prompted on.

    Attributes:
        masks: (O, H, W) bool.
        frames: (O,) int frame index of each mask.
        object_ids: O ids >= 1, the prompts' order.
        names: O names.
        scores: (O,) the model's predicted IoU of each mask.
    """

    masks: np.ndarray
    frames: np.ndarray
    object_ids: list[int]
    names: list[str]
    scores: np.ndarray

    def label_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """The masks as annotated frames (the input of mask propagation).

        Returns:
            ``(frames, labels)``: (K,) increasing indices of the prompted frames and (K, H, W) int32 label maps
            (0 background, else the object id; where masks overlap the later object wins).
        """
        frames = np.unique(self.frames)
        labels = np.zeros((len(frames),) + self.masks.shape[1:], dtype=np.int32)
        for object_id, frame, mask in zip(self.object_ids, self.frames, self.masks):
            labels[np.searchsorted(frames, frame)][mask] = object_id
        return frames, labels


class HfSamSegmenter:
    """Holds a transformers ``SamModel`` and its ``SamProcessor``.

    Attributes:
        model, processor: the network (eval mode) and its pre/post-processing.
        device: where the model runs.
        multimask, mask_threshold: see :class:`SamBackendConfig`.
    """

    def __init__(self, model, processor, device: torch.device | str = "cpu", multimask: bool = True,
                 mask_threshold: float = 0.0) -> None:
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = torch.device(device)
        self.multimask = multimask
        self.mask_threshold = mask_threshold

    @torch.inference_mode()
    def segment(self, image: np.ndarray, prompts: list[ObjectPrompt]) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the prompted objects in one image.

        Args:
            image: (H, W, 3) uint8 RGB.
            prompts: the objects' prompts (their ``frame`` is ignored here).

        Returns:
            ``(masks, scores)``: (O, H, W) bool at the image's size and (O,) predicted IoU.
        """
        image = _check_image(image)
        pixel_values = self.processor(images=image, return_tensors="pt")["pixel_values"].to(self.device)
        embeddings = self.model.get_image_embeddings(pixel_values)
        masks, scores = [], []
        for prompt in prompts:
            kwargs = {}
            if len(prompt.points):
                kwargs["input_points"] = [to_sam_points(prompt.points).tolist()]
                kwargs["input_labels"] = [prompt.labels.tolist()]
            if prompt.box is not None:
                kwargs["input_boxes"] = [[to_sam_box(prompt.box).tolist()]]
            inputs = self.processor(images=image, return_tensors="pt", **kwargs)
            prompt_inputs = {k: inputs[k].to(self.device, torch.float32 if k != "input_labels" else torch.int64)
                             for k in ("input_points", "input_labels", "input_boxes") if k in inputs}
            outputs = self.model(image_embeddings=embeddings, multimask_output=self.multimask, **prompt_inputs)
            candidates = self.processor.image_processor.post_process_masks(
                outputs.pred_masks.cpu(), inputs["original_sizes"], inputs["reshaped_input_sizes"],
                mask_threshold=self.mask_threshold)[0][0]
            iou = outputs.iou_scores[0, 0].float().cpu()
            best = int(torch.argmax(iou))
            masks.append(candidates[best].numpy())
            scores.append(float(iou[best]))
        return np.stack(masks).astype(bool), np.array(scores)


class SegmentAnythingSegmenter:
    """Holds an original ``segment_anything`` SAM and its ``SamPredictor``.

    Attributes:
        model: the ``Sam`` module (eval mode).
        predictor: ``segment_anything.SamPredictor`` wrapping it (resizing, normalisation, prompt transforms).
        multimask, mask_threshold: see :class:`SamBackendConfig`.
    """

    def __init__(self, model, device: torch.device | str = "cpu", multimask: bool = True,
                 mask_threshold: float = 0.0) -> None:
        from segment_anything import SamPredictor

        self.model = model.to(device).eval()
        self.predictor = SamPredictor(self.model)
        self.multimask = multimask
        self.mask_threshold = mask_threshold

    @torch.inference_mode()
    def segment(self, image: np.ndarray, prompts: list[ObjectPrompt]) -> tuple[np.ndarray, np.ndarray]:
        """Same contract as :meth:`HfSamSegmenter.segment`."""
        self.predictor.set_image(_check_image(image), image_format="RGB")
        masks, scores = [], []
        for prompt in prompts:
            logits, iou, _ = self.predictor.predict(
                point_coords=to_sam_points(prompt.points) if len(prompt.points) else None,
                point_labels=prompt.labels if len(prompt.points) else None,
                box=to_sam_box(prompt.box) if prompt.box is not None else None,
                multimask_output=self.multimask, return_logits=True)
            best = int(np.argmax(iou))
            masks.append(logits[best] > self.mask_threshold)
            scores.append(float(iou[best]))
        self.predictor.reset_image()
        return np.stack(masks).astype(bool), np.array(scores)


def _is_torch_file(checkpoint: str) -> bool:
    return Path(checkpoint).suffix.lower() in _TORCH_SUFFIXES


def available(config: SamBackendConfig) -> tuple[bool, str]:
    """Whether :func:`build_sam` can run here, and why (not)."""
    torch_file = _is_torch_file(config.checkpoint)
    package = "segment_anything" if torch_file else "transformers"
    if importlib.util.find_spec(package) is None:
        return False, f"the {package} package is not installed"
    try:
        found = (locate_file(config.checkpoint, "", False, config.cache_dir) if torch_file else
                 locate_pretrained(config.checkpoint, False, config.cache_dir))
    except WeightsUnavailable as error:
        if config.allow_download and not torch_file and config.checkpoint:
            return True, f"{config.checkpoint} will be downloaded"
        return False, f"SAM weights: {error}"
    return True, f"SAM weights at {found}"


def build_sam(config: SamBackendConfig) -> HfSamSegmenter | SegmentAnythingSegmenter:
    """Load the configured checkpoint strictly.

    Raises:
        WeightsUnavailable: weights not found, of an unknown variant, or not matching the model.
    """
    device = pick_device(config.device)
    if _is_torch_file(config.checkpoint):
        path = locate_file(config.checkpoint, "", False, config.cache_dir)
        return SegmentAnythingSegmenter(load_segment_anything(path), device, config.multimask,
                                        config.mask_threshold)
    from transformers import SamModel, SamProcessor

    folder = locate_pretrained(config.checkpoint, config.allow_download, config.cache_dir)
    processor = processor_from_pretrained(SamProcessor, folder)
    model = from_pretrained_strict(SamModel, folder)
    return HfSamSegmenter(model, processor, device, config.multimask, config.mask_threshold)


def load_segment_anything(path: Path):
    """A ``segment_anything`` SAM of the checkpoint's variant, its weights loaded strictly.

    Raises:
        WeightsUnavailable: not a ViT-B/L/H SAM state dict, or mismatched keys.
    """
    from segment_anything import sam_model_registry

    state = read_state_dict(path)
    patch_embed = state.get(_PATCH_EMBED_KEY)
    if patch_embed is None:
        raise WeightsUnavailable(f"{path}: not a segment-anything checkpoint ({_PATCH_EMBED_KEY} is missing)")
    variant = _VARIANT_BY_WIDTH.get(int(patch_embed.shape[0]))
    if variant is None:
        raise WeightsUnavailable(f"{path}: patch embedding width {patch_embed.shape[0]} is none of SAM's "
                                 f"ViT-B/L/H ({', '.join(map(str, _VARIANT_BY_WIDTH))})")
    model = sam_model_registry[variant]()
    load_state_dict_strict(model, state, str(path))
    return model.eval()


def segment_prompts(frames: Frames, prompts: list[ObjectPrompt], config: SamBackendConfig,
                    segmenter: HfSamSegmenter | SegmentAnythingSegmenter | None = None) -> SegmentedObjects:
    """Each prompted object's mask on its prompted frame.

    Args:
        frames: the clip.
        prompts: objects to segment (checked against the clip).
        config: backend settings.
        segmenter: a built segmenter (default: :func:`build_sam` of ``config``).

    Raises:
        InputError: a prompt outside the clip or the frame.
    """
    check_prompts(prompts, frames.num_frames, frames.width, frames.height)
    segmenter = segmenter or build_sam(config)
    masks = np.zeros((len(prompts), frames.height, frames.width), dtype=bool)
    scores = np.zeros(len(prompts))
    for frame in sorted({p.frame for p in prompts}):
        indices = [k for k, p in enumerate(prompts) if p.frame == frame]
        masks[indices], scores[indices] = segmenter.segment(frames.images[frame], [prompts[k] for k in indices])
    return SegmentedObjects(masks, np.array([p.frame for p in prompts]), [p.object_id for p in prompts],
                            [p.name for p in prompts], scores)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    return image
