"""Depth Anything (v1/v2) through transformers: per-frame disparity, aligned into one depth scale for the clip.

The checkpoint is a transformers ``DepthAnythingForDepthEstimation`` folder (``save_pretrained`` layout, with the
image processor's config) or a model id in the Hugging Face cache (e.g.
``depth-anything/Depth-Anything-V2-Small-hf``). The checkpoint's own image processor does the resizing and
normalisation, and its ``post_process_depth_estimation`` resizes the prediction back to the frame size.

Relative models predict affine-invariant disparity; metric models (``depth_estimation_type="metric"``) predict
depth, used here as disparity ``1 / depth`` with an identity map on the anchor frame. Either way the clip's
frames are put into one scale by :func:`preprocess.learned.align.align_sequence` (sparse depths when given,
otherwise chained through optical flow), then turned into depth with a far cut-off.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np
import torch

from preprocess.learned.align import align_sequence, disparity_to_depth
from preprocess.learned.weights import (WeightsUnavailable, from_pretrained_strict, locate_pretrained,
                                        pick_device, processor_from_pretrained)
from scene4d.contracts.depth import DepthMaps
from scene4d.contracts.frames import Frames
from scene4d.errors import InputError

_METRIC_EPS = 1e-6


@dataclass
class DepthAnythingBackendConfig:
    """Depth Anything backend settings."""

    checkpoint: str = "depth-anything/Depth-Anything-V2-Small-hf"
    """A local folder in the ``save_pretrained`` layout, or a Hugging Face model id found in the local cache."""
    allow_download: bool = False
    """Download a model id missing from the cache (needs network; off by default, never in tests)."""
    cache_dir: str = ""
    """Hugging Face cache folder to look in; empty for the default one."""
    device: str = "auto"
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:1``, ..."""
    batch_size: int = 4
    """Frames per forward pass."""
    min_points: int = 20
    """Fewest sparse depths (or flow-consistent pixels) for a frame to get its own scale and shift."""
    outlier_threshold: float = 3.0
    """Points further than this many robust standard deviations from the fit are outliers."""
    far_fraction: float = 0.01
    """Disparity below this fraction of the anchor frame's median is too far to trust (confidence 0)."""


class DepthAnythingPredictor:
    """Holds a Depth Anything model and its image processor; frames in, per-frame disparity out.

    Attributes:
        model: a ``DepthAnythingForDepthEstimation`` in eval mode.
        processor: the checkpoint's image processor (``DPTImageProcessor``).
        device: where the model runs.
        batch_size: frames per forward pass.
    """

    def __init__(self, model, processor, device: torch.device | str = "cpu", batch_size: int = 4) -> None:
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = torch.device(device)
        self.batch_size = batch_size

    @property
    def metric(self) -> bool:
        """Whether the model predicts metric depth rather than relative disparity."""
        return self.model.config.depth_estimation_type == "metric"

    @torch.inference_mode()
    def predict(self, images: np.ndarray) -> np.ndarray:
        """Model output at the frames' size.

        Args:
            images: (T, H, W, 3) uint8 RGB.

        Returns:
            (T, H, W) float32 relative disparity (relative models) or depth (metric models).
        """
        images = _check_images(images)
        height, width = images.shape[1:3]
        outputs = []
        for start in range(0, len(images), self.batch_size):
            batch = list(images[start:start + self.batch_size])
            inputs = self.processor(images=batch, return_tensors="pt").to(self.device)
            result = self.model(**inputs)
            resized = self.processor.post_process_depth_estimation(result, target_sizes=[(height, width)] * len(batch))
            outputs += [r["predicted_depth"].reshape(height, width).float().cpu().numpy() for r in resized]
        return np.stack(outputs)

    def disparity(self, images: np.ndarray) -> np.ndarray:
        """(T, H, W) float64 disparity: the model's output, or ``1 / depth`` for metric models."""
        raw = self.predict(images).astype(np.float64)
        return 1.0 / np.maximum(raw, _METRIC_EPS) if self.metric else raw


def available(config: DepthAnythingBackendConfig) -> tuple[bool, str]:
    """Whether :func:`build_depth_anything` can run here, and why (not)."""
    if importlib.util.find_spec("transformers") is None:
        return False, "the transformers package is not installed"
    try:
        folder = locate_pretrained(config.checkpoint, allow_download=False, cache_dir=config.cache_dir)
    except WeightsUnavailable as error:
        if config.allow_download and config.checkpoint:
            return True, f"{config.checkpoint} will be downloaded"
        return False, f"Depth Anything weights: {error}"
    return True, f"Depth Anything weights at {folder}"


def build_depth_anything(config: DepthAnythingBackendConfig) -> DepthAnythingPredictor:
    """Load the configured checkpoint strictly.

    Raises:
        WeightsUnavailable: weights not found, or not matching the model.
    """
    from transformers import AutoImageProcessor, DepthAnythingForDepthEstimation

    folder = locate_pretrained(config.checkpoint, config.allow_download, config.cache_dir)
    processor = processor_from_pretrained(AutoImageProcessor, folder)
    model = from_pretrained_strict(DepthAnythingForDepthEstimation, folder)
    return DepthAnythingPredictor(model, processor, pick_device(config.device), config.batch_size)


def estimate_depth_anything(frames: Frames, config: DepthAnythingBackendConfig,
                            sparse_depth: np.ndarray | None = None,
                            predictor: DepthAnythingPredictor | None = None) -> DepthMaps:
    """Depth for every frame of a clip, in one scale.

    Args:
        frames: the clip.
        config: backend settings.
        sparse_depth: optional (T, H, W) known depths, 0 where unknown (e.g. triangulated background points);
            when some frame has ``config.min_points`` of them the result is in their units.
        predictor: a built predictor (default: :func:`build_depth_anything` of ``config``).

    Returns:
        DepthMaps with ``method="depth-anything"``; ``metric`` when tied to sparse depths or from a metric model.
    """
    if sparse_depth is not None and sparse_depth.shape != frames.images.shape[:3]:
        raise InputError(f"depth: sparse depth {sparse_depth.shape} does not match the frames "
                         f"{frames.images.shape[:3]}")
    predictor = predictor or build_depth_anything(config)
    disparity = predictor.disparity(frames.images)
    aligned = align_sequence(disparity, sparse_depth, frames.images, config.min_points, config.outlier_threshold,
                             normalise_anchor=not predictor.metric)
    floor = config.far_fraction * float(np.median(aligned.disparity[aligned.anchor]))
    depth, confidence = disparity_to_depth(aligned.disparity, floor if floor > 0 else _METRIC_EPS)
    if aligned.metric:
        scale_note = f"fitted to sparse depths on {int(aligned.sparse_frames.sum())} frames"
    elif predictor.metric:
        scale_note = "the metric model's own scale"
    else:
        scale_note = f"relative: frame {aligned.anchor} normalised to median depth 1"
    notes = (f"Depth Anything disparity, scale/shift per frame chained by optical flow; {scale_note}; "
             f"disparity below {config.far_fraction:g} x the anchor's median has confidence 0")
    return DepthMaps(depth, confidence, method="depth-anything", metric=aligned.metric or predictor.metric,
                     notes=notes)


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 images, got {images.shape} {images.dtype}")
    return images
