"""Finding learned weights on this machine and loading them strictly.

A checkpoint is named by one string, ``source``:

- a local path: a folder in the ``save_pretrained`` layout (``config.json`` + ``model.safetensors``/...) for
  transformers models, or a single file (``.pth``) for models that ship as one state dict;
- otherwise a Hugging Face model id (``org/name``), looked up in the user's Hugging Face cache with
  ``local_files_only=True``. It is downloaded through ``huggingface_hub`` only when the caller passes
  ``allow_download=True`` (a user's explicit choice; tests and CI never do).

Loading is strict: a missing, unexpected or differently shaped parameter is an error, never a silently
re-initialised layer.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from scene4d.errors import InputError

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_TRANSFORMERS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                         "pytorch_model.bin.index.json")
_DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt"]


class WeightsUnavailable(InputError):
    """The weights a backend needs are not on this machine (or do not match the model)."""


def is_model_id(source: str) -> bool:
    """Whether ``source`` reads as a Hugging Face model id (``org/name``) rather than a local path."""
    return bool(_REPO_ID.match(source)) and not Path(source).expanduser().exists()


def _not_cached(source: str, cache_dir: str) -> WeightsUnavailable:
    where = cache_dir or "the default Hugging Face cache"
    return WeightsUnavailable(f"{source} is not in {where}; give a local checkpoint path, or allow the download")


def locate_pretrained(source: str, allow_download: bool = False, cache_dir: str = "") -> Path:
    """The local folder holding a transformers checkpoint.

    Args:
        source: a folder in the ``save_pretrained`` layout, or a Hugging Face model id.
        allow_download: fetch a model id missing from the cache (network access; never in tests).
        cache_dir: Hugging Face cache folder; empty for the default one.

    Raises:
        WeightsUnavailable: nothing usable found, with the reason.
    """
    if not source:
        raise WeightsUnavailable("no checkpoint configured")
    path = Path(source).expanduser()
    if not path.exists():
        if not is_model_id(source):
            raise WeightsUnavailable(f"{source}: no such folder (and not a model id of the form org/name)")
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            path = Path(snapshot_download(source, cache_dir=cache_dir or None, local_files_only=True))
        except LocalEntryNotFoundError:
            if not allow_download:
                raise _not_cached(source, cache_dir) from None
            path = Path(snapshot_download(source, cache_dir=cache_dir or None, allow_patterns=_DOWNLOAD_PATTERNS))
    if not path.is_dir():
        raise WeightsUnavailable(f"{path}: expected a folder with config.json and the weights (save_pretrained "
                                 f"layout), got a file")
    if not (path / "config.json").is_file():
        raise WeightsUnavailable(f"{path}: config.json is missing")
    if not any((path / name).is_file() for name in _TRANSFORMERS_WEIGHTS):
        raise WeightsUnavailable(f"{path}: no weights file ({', '.join(_TRANSFORMERS_WEIGHTS)})")
    return path


def locate_file(source: str, filename: str, allow_download: bool = False, cache_dir: str = "") -> Path:
    """The local path of a single-file checkpoint.

    Args:
        source: a local file, or a Hugging Face model id whose repository holds ``filename``.
        filename: the file inside the repository (used only for a model id).
        allow_download: fetch it when missing from the cache (network access; never in tests).
        cache_dir: Hugging Face cache folder; empty for the default one.

    Raises:
        WeightsUnavailable: nothing usable found, with the reason.
    """
    if not source:
        raise WeightsUnavailable("no checkpoint configured")
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise WeightsUnavailable(f"{path}: expected a checkpoint file, got a folder")
    if not is_model_id(source):
        raise WeightsUnavailable(f"{source}: no such file (and not a model id of the form org/name)")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(source, filename, cache_dir=cache_dir or None, local_files_only=True))
    except LocalEntryNotFoundError:
        if not allow_download:
            raise _not_cached(f"{source}/{filename}", cache_dir) from None
    return Path(hf_hub_download(source, filename, cache_dir=cache_dir or None))


def from_pretrained_strict(model_class, folder: Path, **kwargs) -> torch.nn.Module:
    """``model_class.from_pretrained(folder)`` in eval mode, refusing any parameter mismatch.

    Raises:
        WeightsUnavailable: missing, unexpected or mismatched parameters (named, a few at most).
    """
    model, info = model_class.from_pretrained(folder, local_files_only=True, output_loading_info=True, **kwargs)
    problems = [f"{kind.replace('_', ' ')}: {_few(info.get(kind))}"
                for kind in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(kind)]
    problems += [str(message) for message in info.get("error_msgs") or []]
    if problems:
        raise WeightsUnavailable(f"{folder}: weights do not match {model_class.__name__} ({'; '.join(problems)})")
    return model.eval()


def processor_from_pretrained(processor_class, folder: Path):
    """The checkpoint's own pre/post-processing (``processor_config.json`` or ``preprocessor_config.json``).

    Raises:
        WeightsUnavailable: the folder has no processor files for it.
    """
    try:
        return processor_class.from_pretrained(folder, local_files_only=True)
    except OSError as error:
        raise WeightsUnavailable(f"{folder}: cannot load its {processor_class.__name__} "
                                 f"({str(error).splitlines()[0]})") from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A ``.pth``/``.pt`` state dict (tensors only; also unwraps ``{"model": ...}`` and ``{"state_dict": ...}``).

    Raises:
        WeightsUnavailable: the file holds something else.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for unreadable or non-tensor pickles
        raise WeightsUnavailable(f"{path}: cannot read a state dict ({type(error).__name__}: {error})") from None
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsUnavailable(f"{path}: expected a state dict of tensors")
    return state


def load_state_dict_strict(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` into ``module``; any missing, unexpected or misshapen parameter is an error.

    Raises:
        WeightsUnavailable: naming the mismatches.
    """
    try:
        result = module.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # size mismatches
        raise WeightsUnavailable(f"{source}: weights do not match {type(module).__name__} ({error})") from None
    problems = [f"{name}: {_few(keys)}" for name, keys in (("missing keys", result.missing_keys),
                                                           ("unexpected keys", result.unexpected_keys)) if keys]
    if problems:
        raise WeightsUnavailable(f"{source}: weights do not match {type(module).__name__} ({'; '.join(problems)})")


def pick_device(device: str) -> torch.device:
    """``auto`` is CUDA when available, else the CPU; anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _few(keys, limit: int = 3) -> str:
    keys = sorted(str(k) for k in keys)
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > limit else ''})"
