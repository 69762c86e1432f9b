"""Typed configs: a dataclass schema, YAML presets merged onto it, then ``key=value`` overrides.

Built on OmegaConf structured configs, which reject unknown keys and wrongly typed values. Every
problem becomes an :class:`~scene4d.errors.InputError` with a one-line message.
"""

from __future__ import annotations

from dataclasses import is_dataclass
from pathlib import Path
from typing import TypeVar

import yaml

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from scene4d.errors import InputError

T = TypeVar("T")


def preset_names(presets_dir: str | Path) -> list[str]:
    """Names of the YAML presets in a folder (file stems)."""
    return sorted(p.stem for p in Path(presets_dir).glob("*.yaml"))


def load_config(schema: type[T], presets_dir: str | Path, preset: str | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Build a config object.

    Args:
        schema: dataclass type with defaults for every field.
        presets_dir: folder of ``<name>.yaml`` presets.
        preset: a preset name from that folder, a path to a YAML file, or None for the defaults.
        overrides: ``section.key=value`` strings, applied last.

    Returns:
        An instance of ``schema`` (nested dataclasses included).

    Raises:
        InputError: unknown preset, unreadable YAML, unknown key, value of the wrong type.
    """
    if not is_dataclass(schema):
        raise TypeError(f"schema must be a dataclass type, got {schema!r}")
    config = OmegaConf.structured(schema)
    if preset:
        config = _merge(config, _load_yaml(_preset_path(presets_dir, preset)), f"preset {preset!r}")
    for item in overrides:
        if "=" not in item:
            raise InputError(f"override {item!r} is not of the form key=value")
        config = _merge(config, OmegaConf.from_dotlist([item]), f"override {item!r}")
    try:
        return OmegaConf.to_object(config)
    except OmegaConfBaseException as exc:
        raise InputError(f"config: {_first_line(exc)}") from None


def to_yaml(config) -> str:
    """A config object as YAML text (for ``--show-config`` and the manifest)."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def to_dict(config) -> dict:
    """A config object (or one section of it) as plain JSON-serialisable data."""
    return OmegaConf.to_container(OmegaConf.structured(config), resolve=True)


def _preset_path(presets_dir: str | Path, preset: str) -> Path:
    candidate = Path(preset)
    if candidate.suffix in {".yaml", ".yml"}:
        if not candidate.is_file():
            raise InputError(f"preset file {preset} does not exist")
        return candidate
    path = Path(presets_dir) / f"{preset}.yaml"
    if not path.is_file():
        names = ", ".join(preset_names(presets_dir)) or "none"
        raise InputError(f"unknown preset {preset!r} (available: {names})")
    return path


def _load_yaml(path: Path):
    try:
        return OmegaConf.load(path)
    except (yaml.YAMLError, OmegaConfBaseException) as exc:
        raise InputError(f"preset {path}: not valid YAML ({_first_line(exc)})") from None


def _merge(base, extra, what: str):
    try:
        return OmegaConf.merge(base, extra)
    except OmegaConfBaseException as exc:
        raise InputError(f"{what}: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
