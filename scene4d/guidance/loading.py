"""Finding a guidance model's weights on this machine and loading them strictly.

``config.model`` is a folder in the diffusers pipeline layout (one subfolder per component, as
``save_pretrained`` writes it), or a Hugging Face model id looked up in the local cache with
``local_files_only=True``; it is downloaded only when ``config.allow_download`` is set. The subfolders each kind
needs are :data:`COMPONENTS`. Loading is strict: a missing, unexpected or differently shaped parameter is an
error, never a silently re-initialised layer. Absent weights are not an error: :func:`build_guidance` then
returns None and logs why (so fitting runs without guidance).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel, UNet3DConditionModel
from transformers import CLIPImageProcessor, CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

from scene4d.errors import InputError
from scene4d.guidance.conditioning import CameraProjection, TextEncoder, Zero123Encoder
from scene4d.guidance.config import GuidanceConfig
from scene4d.guidance.guidance import Guidance

logger = logging.getLogger(__name__)

COMPONENTS = {
    "zero123": ("unet", "vae", "scheduler", "image_encoder", "feature_extractor", "clip_camera_projection"),
    "sd": ("unet", "vae", "scheduler", "text_encoder", "tokenizer"),
    "video": ("unet", "vae", "scheduler", "text_encoder", "tokenizer"),
}
_CONFIG_FILES = {"scheduler": "scheduler_config.json", "feature_extractor": "preprocessor_config.json",
                 "tokenizer": "tokenizer_config.json"}
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class _NotCached(InputError):
    """A model id absent from the local cache (downloadable when the config allows it)."""


def _check_layout(folder: Path, kind: str) -> None:
    for name in COMPONENTS[kind]:
        config_file = folder / name / _CONFIG_FILES.get(name, "config.json")
        if not config_file.is_file():
            raise InputError(f"{folder}: {name}/{config_file.name} is missing (a {kind} model needs "
                             f"{', '.join(COMPONENTS[kind])})")
        weights = [p for p in (folder / name).iterdir() if p.suffix in {".safetensors", ".bin"}]
        if name not in _CONFIG_FILES and not weights:
            raise InputError(f"{folder}: {name}/ holds no weights (.safetensors or .bin)")


def locate_model(config: GuidanceConfig, download: bool = False) -> Path:
    """The local folder holding the configured model, its layout checked for ``config.kind``.

    Args:
        config: ``model``, ``kind`` and ``cache_dir`` are read.
        download: fetch a model id missing from the cache (network access; never in tests).

    Raises:
        InputError: nothing usable found, with the reason.
    """
    if not config.model:
        raise InputError("no guidance model configured (guidance.model)")
    folder = Path(config.model).expanduser()
    if not folder.exists():
        if not _REPO_ID.match(config.model):
            raise InputError(f"{config.model}: no such folder (and not a model id of the form org/name)")
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            folder = Path(snapshot_download(config.model, cache_dir=config.cache_dir or None, local_files_only=True))
        except LocalEntryNotFoundError:
            if not download:
                where = config.cache_dir or "the default Hugging Face cache"
                raise _NotCached(f"{config.model} is not in {where}; give a local folder, or allow the "
                                 f"download") from None
            patterns = [f"{name}/*.{ext}" for name in COMPONENTS[config.kind] for ext in ("json", "txt", "safetensors")]
            folder = Path(snapshot_download(config.model, cache_dir=config.cache_dir or None,
                                            allow_patterns=patterns))
    if not folder.is_dir():
        raise InputError(f"{folder}: expected a folder in the diffusers pipeline layout, got a file")
    _check_layout(folder, config.kind)
    return folder


def available(config: GuidanceConfig) -> tuple[bool, str]:
    """Whether :func:`build_guidance` would load a model, and why (never touches the network).

    Returns:
        ``(True, where)`` when the weights are on this machine, or are a model id whose download the config
        allows; ``(False, reason)`` otherwise (``kind == "off"`` included).
    """
    if config.kind == "off":
        return False, "guidance is off (guidance.kind=off)"
    try:
        config.check()
        return True, str(locate_model(config, download=False))
    except _NotCached as error:
        if config.allow_download:
            return True, f"{config.model} will be downloaded (allow_download is set)"
        return False, str(error)
    except InputError as error:
        return False, str(error)


def _strict(model_class, folder: Path):
    try:
        model, info = model_class.from_pretrained(folder, local_files_only=True, output_loading_info=True)
    except (RuntimeError, ValueError, OSError) as error:  # diffusers raises RuntimeError on size mismatches
        first = str(error).strip().splitlines()[:2]
        raise InputError(f"{folder}: weights do not match {model_class.__name__} ({' '.join(first)})") from None
    problems = [f"{kind.replace('_', ' ')}: {', '.join(sorted(map(str, info[kind]))[:3])}"
                for kind in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(kind)]
    problems += [str(message) for message in info.get("error_msgs") or []]
    if problems:
        raise InputError(f"{folder}: weights do not match {model_class.__name__} ({'; '.join(problems)})")
    return model


def load_guidance(folder: Path, config: GuidanceConfig) -> Guidance:
    """Every component of a ``config.kind`` model from a local folder in the diffusers layout, on the CPU.

    Raises:
        InputError: a component whose weights do not match its model class, or an inconsistent model.
    """
    unet_class = UNet3DConditionModel if config.kind == "video" else UNet2DConditionModel
    unet = _strict(unet_class, folder / "unet")
    vae = _strict(AutoencoderKL, folder / "vae")
    scheduler = DDPMScheduler.from_pretrained(folder / "scheduler", local_files_only=True)
    if config.kind == "zero123":
        processor = CLIPImageProcessor.from_pretrained(folder / "feature_extractor", local_files_only=True)
        encoder = Zero123Encoder(_strict(CLIPVisionModelWithProjection, folder / "image_encoder"), processor,
                                 _strict(CameraProjection, folder / "clip_camera_projection"))
    else:
        encoder = TextEncoder(CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True),
                              _strict(CLIPTextModel, folder / "text_encoder"))
    try:
        return Guidance(config, unet, vae, scheduler, encoder)
    except ValueError as error:
        raise InputError(f"{folder}: {error}") from None


def build_guidance(config: GuidanceConfig) -> Guidance | None:
    """The configured guidance model on ``config.device``, or None (reason logged) when off or absent.

    Raises:
        InputError: invalid settings, or weights present but not loadable strictly.
    """
    config.check()
    ok, reason = available(config)
    if not ok:
        (logger.info if config.kind == "off" else logger.warning)("no SDS guidance: %s", reason)
        return None
    guidance = load_guidance(locate_model(config, download=config.allow_download), config)
    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return guidance.to(device)
