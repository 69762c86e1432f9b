"""The composed scene on disk, so rendering, export and the viewer read one placed scene.

Layout of ``<run>/scene/``::

    background.ply          the static background's Gaussians in world coordinates (absent if none)
    objects/<id>/rig/       each placed object as a rig (``scene4d.fit.rig``)
    scene.json              {"num_frames", "objects": [{"id", "name", "edit" (4x4), "time_offset", "visible"}],
                             "metrics": {...}}
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from compose.scene import Scene, SceneObject
from scene4d.atomic import atomic_directory
from scene4d.errors import InputError
from scene4d.fit.rig import load_rig, save_rig
from scene4d.ply import load_ply, save_ply


def save_scene(scene: Scene, folder: str | Path, metrics: dict) -> None:
    """Write the layout above atomically."""
    with atomic_directory(folder) as tmp:
        if scene.background is not None:
            save_ply(tmp / "background.ply", scene.background)
        rows = []
        for obj in scene.objects:
            save_rig(obj.model, tmp / "objects" / str(obj.object_id) / "rig",
                     {"object_id": obj.object_id, "name": obj.name, "num_frames": scene.num_frames})
            rows.append({"id": obj.object_id, "name": obj.name, "edit": obj.edit.tolist(),
                         "time_offset": obj.time_offset, "visible": obj.visible})
        document = {"num_frames": scene.num_frames, "objects": rows, "metrics": metrics}
        (tmp / "scene.json").write_text(json.dumps(document, indent=2) + "\n")


def load_scene(folder: str | Path) -> Scene:
    """Read a scene written by :func:`save_scene`."""
    folder = Path(folder)
    if not (folder / "scene.json").is_file():
        raise InputError(f"scene: {folder / 'scene.json'} is missing (run the compose stage first)")
    document = json.loads((folder / "scene.json").read_text())
    background = load_ply(folder / "background.ply") if (folder / "background.ply").is_file() else None
    objects = []
    for row in document["objects"]:
        model, _ = load_rig(folder / "objects" / str(row["id"]) / "rig")
        objects.append(SceneObject(row["id"], row["name"], model, torch.tensor(row["edit"], dtype=torch.float32),
                                   row["time_offset"], row["visible"]))
    return Scene(background, objects, document["num_frames"])
