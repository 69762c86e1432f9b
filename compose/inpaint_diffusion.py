"""Learned background inpainting: a Stable Diffusion inpainting model from local weights (diffusers).

``config.model`` is a folder in the diffusers pipeline layout of an inpainting model (``unet`` with 9 input
channels: latents, mask and masked-image latents; ``vae``, ``text_encoder``, ``tokenizer``, ``scheduler``), or a
Hugging Face model id found in the local cache (never downloaded). Loading is strict: a missing, unexpected or
differently shaped parameter is an error. Absent weights are not an error: :func:`build_inpainter` then returns
None and logs why, and the background falls back to OpenCV inpainting.

The result is a callable ``(image, hole) -> image`` for :func:`compose.inpaint.fill_background`; only hole pixels
change. Frames are resized to the model's working size (long side ``resolution``, sides multiples of 8) and the
generated content is resized back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from scene4d.errors import InputError

logger = logging.getLogger(__name__)

COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
_CONFIG_FILES = {"scheduler": "scheduler_config.json", "tokenizer": "tokenizer_config.json"}
INPAINT_CHANNELS = 9


@dataclass
class DiffusionInpaintConfig:
    """Which inpainting model fills the object regions, and how it is sampled."""

    model: str = ""
    """Local folder (diffusers layout) or cached model id of an inpainting model; empty: OpenCV only."""
    cache_dir: str = ""
    """Hugging Face cache to look a model id up in (empty: the default cache)."""
    prompt: str = "empty background, nothing in the foreground"
    """What the filled regions should show."""
    negative_prompt: str = "person, animal, object, text, watermark"
    """What they should not show."""
    steps: int = 25
    """Denoising steps (DDIM)."""
    guidance_scale: float = 7.5
    """Classifier-free guidance scale."""
    resolution: int = 512
    """Long side of the model's working size in pixels (rounded to a multiple of 8)."""
    seed: int = 0
    """Sampling seed (the same for every frame, for consistent fills)."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu`` or ``cuda``."""


def locate_model(config: DiffusionInpaintConfig) -> Path:
    """The local folder of the configured model, its layout checked.

    Raises:
        InputError: nothing usable on this machine, with the reason.
    """
    if not config.model:
        raise InputError("no inpainting model configured (model is empty)")
    folder = Path(config.model).expanduser()
    if not folder.exists():
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            folder = Path(snapshot_download(config.model, cache_dir=config.cache_dir or None, local_files_only=True))
        except (LocalEntryNotFoundError, ValueError):
            raise InputError(f"{config.model}: no such folder, and not a model id in the local cache") from None
    for name in COMPONENTS:
        if not (folder / name / _CONFIG_FILES.get(name, "config.json")).is_file():
            raise InputError(f"{folder}: {name}/ is missing or incomplete (an inpainting model needs "
                             f"{', '.join(COMPONENTS)})")
    return folder


def available(config: DiffusionInpaintConfig) -> tuple[bool, str]:
    """Whether :func:`build_inpainter` would load a model, and where or why not (never touches the network)."""
    try:
        return True, str(locate_model(config))
    except InputError as error:
        return False, str(error)


def _strict(model_class, folder: Path):
    try:
        model, info = model_class.from_pretrained(folder, local_files_only=True, output_loading_info=True)
    except (RuntimeError, ValueError, OSError) as error:
        first = " ".join(str(error).strip().splitlines()[:2])
        raise InputError(f"{folder}: weights do not match {model_class.__name__} ({first})") from None
    problems = [f"{kind.replace('_', ' ')}: {', '.join(sorted(map(str, info[kind]))[:3])}"
                for kind in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(kind)]
    if problems:
        raise InputError(f"{folder}: weights do not match {model_class.__name__} ({'; '.join(problems)})")
    return model


def working_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """``(width, height)`` with the long side ``resolution`` and both sides multiples of 8 (at least 8)."""
    scale = resolution / max(width, height)
    return tuple(max(8, int(round(side * scale / 8)) * 8) for side in (width, height))


class DiffusionInpainter:
    """Fills hole pixels of an image with a diffusers inpainting pipeline (see the module docstring).

    Args:
        pipeline: a loaded ``StableDiffusionInpaintPipeline``.
        config: prompts, steps, guidance, working resolution, seed.
    """

    def __init__(self, pipeline: StableDiffusionInpaintPipeline, config: DiffusionInpaintConfig):
        self.pipeline = pipeline
        self.config = config

    @torch.no_grad()
    def __call__(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """Inpaint ``hole``.

        Args:
            image: (H, W, 3) uint8 RGB.
            hole: (H, W) bool, True where the content is to be generated.

        Returns:
            (H, W, 3) uint8, equal to ``image`` outside ``hole``.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"inpaint: expected image (H, W, 3) uint8, got {image.shape} {image.dtype}")
        if hole.shape != image.shape[:2]:
            raise InputError(f"inpaint: hole {hole.shape} does not match image {image.shape[:2]}")
        if not hole.any():
            return image.copy()
        height, width = hole.shape
        size = working_size(width, height, self.config.resolution)
        device = self.pipeline.device
        pixels = torch.from_numpy(cv2.resize(image, size, interpolation=cv2.INTER_AREA)).to(device).float() / 255.0
        mask = cv2.resize(hole.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) > 0
        generator = torch.Generator(device=device).manual_seed(self.config.seed)
        generated = self.pipeline(
            prompt=self.config.prompt, negative_prompt=self.config.negative_prompt or None,
            image=pixels.permute(2, 0, 1)[None],
            mask_image=torch.from_numpy(mask).float()[None, None].to(device),
            height=size[1], width=size[0], num_inference_steps=self.config.steps,
            guidance_scale=self.config.guidance_scale, generator=generator, output_type="np").images[0]
        generated = cv2.resize((np.clip(generated, 0.0, 1.0) * 255).round().astype(np.uint8), (width, height),
                               interpolation=cv2.INTER_LINEAR)
        return np.where(hole[..., None], generated, image)


def load_inpainter(folder: Path, config: DiffusionInpaintConfig) -> DiffusionInpainter:
    """Every component from a local folder in the diffusers layout, on the CPU.

    Raises:
        InputError: a component whose weights do not match its class, or a UNet that is not an inpainting one.
    """
    unet = _strict(UNet2DConditionModel, folder / "unet")
    if unet.config.in_channels != INPAINT_CHANNELS:
        raise InputError(f"{folder}: the UNet takes {unet.config.in_channels} input channels, an inpainting UNet "
                         f"takes {INPAINT_CHANNELS} (latents, mask, masked image)")
    pipeline = StableDiffusionInpaintPipeline(
        vae=_strict(AutoencoderKL, folder / "vae"), text_encoder=_strict(CLIPTextModel, folder / "text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True), unet=unet,
        scheduler=DDIMScheduler.from_pretrained(folder / "scheduler", local_files_only=True),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipeline.set_progress_bar_config(disable=True)
    return DiffusionInpainter(pipeline, config)


def build_inpainter(config: DiffusionInpaintConfig) -> DiffusionInpainter | None:
    """The configured inpainter on ``config.device``, or None (reason logged) when no model is on this machine.

    Raises:
        InputError: invalid settings, or weights present but not loadable strictly.
    """
    if config.steps < 1 or config.resolution < 8:
        raise InputError(f"inpaint: need steps >= 1 and resolution >= 8, got {config.steps} and {config.resolution}")
    ok, reason = available(config)
    if not ok:
        (logger.info if not config.model else logger.warning)("no learned inpainting: %s", reason)
        return None
    inpainter = load_inpainter(locate_model(config), config)
    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    inpainter.pipeline.to(device)
    return inpainter
