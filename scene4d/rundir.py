"""The run directory: where every stage writes its artefacts, and the manifest that records each stage.

Layout (each artefact's own layout is documented in its contract module)::

    <run>/manifest.json   what ran: per stage its settings, backend (and why), package versions,
                          wall time, peak memory, outputs; written atomically after every stage
    <run>/frames/         scene4d.contracts.frames
    <run>/masks/          scene4d.contracts.masks
    <run>/depth/          scene4d.contracts.depth
    <run>/tracks/         scene4d.contracts.tracks
    <run>/cameras/        scene4d.contracts.cameras
    <run>/objects/<id>/   per-object fits
    <run>/scene/          composition, renders and exports

A stage is skipped on a later run (resumed) when its record says it finished, its settings and the
fingerprints of the stages it depends on are unchanged, and all its outputs exist.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

from scene4d.atomic import write_json_atomic
from scene4d.resources import measure

MANIFEST = "manifest.json"
TRACKED_PACKAGES = ("scene4d", "torch", "numpy", "opencv-python-headless", "av", "gsplat", "kornia",
                    "transformers", "diffusers", "pycolmap", "plyfile", "segment-anything")


@dataclass
class StageResult:
    """What a stage function reports back.

    Attributes:
        backend: the implementation that ran (e.g. ``pyav``, ``motion``, ``depth-anything``).
        reason: why that backend was chosen (e.g. ``auto: no checkpoint found``).
        outputs: paths it wrote, relative to the run directory.
        metrics: numbers worth keeping (counts, errors, checks passed).
    """

    backend: str
    reason: str = ""
    outputs: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape results (missing ones are omitted)."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _fingerprint(settings: dict, upstream: list[str]) -> str:
    blob = json.dumps({"settings": settings, "upstream": upstream}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class RunDir:
    """A run directory and its manifest; the one place stages are started and recorded."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / MANIFEST
        if path.is_file():
            self.manifest = json.loads(path.read_text())
        else:
            self.manifest = {"created": _now(), "command": " ".join(sys.argv), "stages": {}}
        self.manifest["versions"] = package_versions()

    def path(self, *parts: str) -> Path:
        """Absolute path of something inside the run directory."""
        return self.root.joinpath(*parts)

    def stage_record(self, name: str) -> dict | None:
        return self.manifest["stages"].get(name)

    def is_done(self, name: str, settings: dict, depends_on: tuple[str, ...] = ()) -> bool:
        """True when ``name`` finished with these settings after the same upstream runs, outputs present."""
        record = self.stage_record(name)
        if record is None or record.get("status") != "done":
            return False
        if record["fingerprint"] != self._stage_fingerprint(settings, depends_on):
            return False
        return all(self.path(out).exists() for out in record["outputs"])

    def run_stage(
        self,
        name: str,
        settings: dict,
        fn: Callable[[], StageResult],
        depends_on: tuple[str, ...] = (),
    ) -> tuple[dict, bool]:
        """Run one stage unless it can be resumed, and record it in the manifest.

        Args:
            name: stage name (``decode``, ``masks``, ...).
            settings: everything that changes the stage's outputs (JSON-serialisable).
            fn: does the work and writes the outputs (atomically), returning a :class:`StageResult`.
            depends_on: names of the stages whose outputs it reads; rerunning one of them reruns this.

        Returns:
            ``(record, ran)``: the manifest record, and False when the stage was skipped.
        """
        if self.is_done(name, settings, depends_on):
            return self.stage_record(name), False
        self.manifest["stages"][name] = {"status": "running", "started": _now(), "settings": settings}
        self.save()
        with measure() as usage:
            result = fn()
        record = {
            "status": "done",
            "settings": settings,
            "depends_on": list(depends_on),
            "fingerprint": self._stage_fingerprint(settings, depends_on),
            "backend": result.backend,
            "backend_reason": result.reason,
            "outputs": result.outputs,
            "metrics": result.metrics,
            "wall_time_s": round(usage.wall_s, 3),
            "peak_rss_mb": round(usage.peak_rss_mb, 1),
            "peak_cuda_mb": usage.peak_cuda_mb,
            "finished": _now(),
        }
        self.manifest["stages"][name] = record
        self.save()
        return record, True

    def mark_failed(self, name: str, message: str) -> None:
        """Record that a stage stopped on an error, so nobody mistakes its outputs for complete ones."""
        record = self.manifest["stages"].get(name, {})
        record.update({"status": "failed", "error": message, "finished": _now()})
        self.manifest["stages"][name] = record
        self.save()

    def save(self) -> None:
        write_json_atomic(self.root / MANIFEST, self.manifest)

    def _stage_fingerprint(self, settings: dict, depends_on: tuple[str, ...]) -> str:
        upstream = [self.manifest["stages"].get(dep, {}).get("fingerprint", "missing") for dep in depends_on]
        return _fingerprint(settings, upstream)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
