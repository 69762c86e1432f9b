"""Scene edits without refitting: remove an object, move / rotate / scale it, shift it in time.

Every edit is a change of a :class:`~compose.scene.SceneObject`'s ``visible``, ``edit`` (a world similarity
applied after the object's own trajectory) or ``time_offset``; the fitted models are never touched, and each
function returns a new :class:`~compose.scene.Scene` sharing the models.

Edits file (JSON)::

    {"edits": [
        {"object": 1, "remove": true},
        {"object": 2, "translate": [0.5, 0.0, 0.0], "rotate_deg": [0, 90, 0], "scale": 1.5,
         "time_shift_frames": 4, "center_frame": 0}
    ]}

- ``object`` (required): the object's id, as in the masks.
- ``remove``: true hides the object from renders and exports (false shows it again).
- ``translate``: ``[x, y, z]`` in world units.
- ``rotate_deg``: ``[rx, ry, rz]`` degrees, rotations about the world x, then y, then z axes (extrinsic
  "xyz"), about the object's centre.
- ``scale``: a positive factor, about the object's centre.
- ``center_frame``: the frame at which the centre is taken (mean of the object's Gaussians as currently
  edited); default 0.
- ``time_shift_frames``: at scene frame ``f`` the object shows what it did at frame ``f + n`` (clamped to the
  clip); may be fractional.

Within one entry: scale, then rotate (both about the centre), then translate, then shift in time. Entries
apply in order, so later ones see the earlier ones' results.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from scipy.spatial.transform import Rotation

from compose.scene import Scene, SceneObject
from scene4d.conventions import normalized_time
from scene4d.errors import InputError

EDIT_KEYS = ("object", "remove", "translate", "rotate_deg", "scale", "time_shift_frames", "center_frame")


@dataclass
class ObjectEdit:
    """One entry of an edits file (see the module docstring); None leaves that aspect unchanged."""

    object: int
    remove: bool | None = None
    translate: tuple[float, float, float] | None = None
    rotate_deg: tuple[float, float, float] | None = None
    scale: float | None = None
    time_shift_frames: float | None = None
    center_frame: int = 0


def similarity_about(center: torch.Tensor, rotation: torch.Tensor | None = None, scale: float = 1.0,
                     translation: torch.Tensor | None = None) -> torch.Tensor:
    """(4, 4) matrix of ``x -> R s (x - c) + c + t``: scale and rotate about ``center`` (3,), then translate."""
    matrix = torch.eye(4, dtype=torch.float64)
    linear = scale * (torch.eye(3, dtype=torch.float64) if rotation is None else rotation.double())
    matrix[:3, :3] = linear
    matrix[:3, 3] = center.double() - linear @ center.double()
    if translation is not None:
        matrix[:3, 3] += translation.double()
    return matrix


def euler_rotation(degrees: tuple[float, float, float]) -> torch.Tensor:
    """(3, 3) rotation about the world x, then y, then z axes by ``degrees``."""
    return torch.from_numpy(Rotation.from_euler("xyz", list(degrees), degrees=True).as_matrix())


def _object(scene: Scene, object_id: int) -> SceneObject:
    for obj in scene.objects:
        if obj.object_id == object_id:
            return obj
    raise InputError(f"edit: no object {object_id} in the scene (ids: {[o.object_id for o in scene.objects]})")


def _replace_object(scene: Scene, object_id: int, **changes) -> Scene:
    _object(scene, object_id)
    objects = [dataclasses.replace(o, **changes) if o.object_id == object_id else o for o in scene.objects]
    return dataclasses.replace(scene, objects=objects)


@torch.no_grad()
def object_center(scene: Scene, object_id: int, time: float) -> torch.Tensor:
    """(3,) mean of the object's Gaussians in the world at normalised ``time``, its current edits included."""
    return scene.posed(time, include_background=False, object_ids=[object_id]).means.mean(0)


def remove_object(scene: Scene, object_id: int, removed: bool = True) -> Scene:
    """Hide the object (``removed=False`` shows it again)."""
    return _replace_object(scene, object_id, visible=not removed)


def transform_object(scene: Scene, object_id: int, translate: torch.Tensor | None = None,
                     rotation: torch.Tensor | None = None, scale: float = 1.0, center_time: float = 0.0) -> Scene:
    """Scale and rotate the object about its centre at ``center_time``, then translate it.

    Args:
        translate: (3,) world offset; rotation: (3, 3); scale: positive factor.
        center_time: normalised time at which the centre is taken.
    """
    if not scale > 0:
        raise InputError(f"edit: scale must be positive, got {scale}")
    obj = _object(scene, object_id)
    # The centre is taken with the object visible, so a hidden object can be moved too.
    probe = _replace_object(scene, object_id, visible=True)
    matrix = similarity_about(object_center(probe, object_id, center_time), rotation, scale, translate)
    edit = (matrix @ obj.edit.double()).to(obj.edit.dtype)
    return _replace_object(scene, object_id, edit=edit)


def shift_in_time(scene: Scene, object_id: int, frames: float) -> Scene:
    """At scene frame ``f`` the object shows its frame ``f + frames`` (clamped to the clip)."""
    obj = _object(scene, object_id)
    offset = float(normalized_time(torch.tensor(float(frames)), scene.num_frames))
    return _replace_object(scene, object_id, time_offset=obj.time_offset + offset)


def _vector(entry: dict, key: str, index: int) -> tuple[float, float, float]:
    value = entry[key]
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise InputError(f"edits[{index}].{key}: expected a list of 3 numbers, got {value!r}")
    return tuple(float(v) for v in value)


def _number(entry: dict, key: str, index: int) -> float:
    value = entry[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InputError(f"edits[{index}].{key}: expected a number, got {value!r}")
    return float(value)


def parse_edits(data: object) -> list[ObjectEdit]:
    """Check and convert the contents of an edits file (see the module docstring).

    Raises:
        InputError: a missing ``edits`` list, an unknown key, or a value of the wrong type, naming it.
    """
    if not isinstance(data, dict) or not isinstance(data.get("edits"), list) or set(data) != {"edits"}:
        raise InputError('edits: expected {"edits": [ ... ]} with nothing else at the top level')
    edits = []
    for index, entry in enumerate(data["edits"]):
        if not isinstance(entry, dict):
            raise InputError(f"edits[{index}]: expected an object, got {entry!r}")
        unknown = sorted(set(entry) - set(EDIT_KEYS))
        if unknown:
            raise InputError(f"edits[{index}]: unknown key {unknown[0]!r} (known: {', '.join(EDIT_KEYS)})")
        if "object" not in entry or not isinstance(entry["object"], int) or isinstance(entry["object"], bool):
            raise InputError(f"edits[{index}]: 'object' must be an integer object id, got {entry.get('object')!r}")
        edit = ObjectEdit(object=entry["object"])
        if "remove" in entry:
            if not isinstance(entry["remove"], bool):
                raise InputError(f"edits[{index}].remove: expected true or false, got {entry['remove']!r}")
            edit.remove = entry["remove"]
        if "translate" in entry:
            edit.translate = _vector(entry, "translate", index)
        if "rotate_deg" in entry:
            edit.rotate_deg = _vector(entry, "rotate_deg", index)
        if "scale" in entry:
            edit.scale = _number(entry, "scale", index)
            if edit.scale <= 0:
                raise InputError(f"edits[{index}].scale: must be positive, got {edit.scale}")
        if "time_shift_frames" in entry:
            edit.time_shift_frames = _number(entry, "time_shift_frames", index)
        if "center_frame" in entry:
            if not isinstance(entry["center_frame"], int) or isinstance(entry["center_frame"], bool):
                raise InputError(f"edits[{index}].center_frame: expected an integer, got {entry['center_frame']!r}")
            edit.center_frame = entry["center_frame"]
        edits.append(edit)
    return edits


def load_edits(path: str | Path) -> list[ObjectEdit]:
    """Read and check an edits JSON file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"edits: {path} is not a file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"edits: {path} is not valid JSON ({error})") from None
    return parse_edits(data)


def apply_edits(scene: Scene, edits: list[ObjectEdit]) -> Scene:
    """Apply edits in order (see the module docstring); the input scene is not modified.

    Raises:
        InputError: an edit names an object the scene does not have, or a centre frame outside the clip.
    """
    ids = [o.object_id for o in scene.objects]
    for index, edit in enumerate(edits):
        if edit.object not in ids:
            raise InputError(f"edits[{index}]: no object {edit.object} in the scene (ids: {ids})")
        if not 0 <= edit.center_frame < scene.num_frames:
            raise InputError(f"edits[{index}].center_frame: {edit.center_frame} is outside the clip "
                             f"(0..{scene.num_frames - 1})")
        if edit.remove is not None:
            scene = remove_object(scene, edit.object, edit.remove)
        if edit.translate is not None or edit.rotate_deg is not None or edit.scale is not None:
            scene = transform_object(
                scene, edit.object,
                translate=None if edit.translate is None else torch.tensor(edit.translate, dtype=torch.float64),
                rotation=None if edit.rotate_deg is None else euler_rotation(edit.rotate_deg),
                scale=1.0 if edit.scale is None else edit.scale,
                center_time=float(normalized_time(edit.center_frame, scene.num_frames)))
        if edit.time_shift_frames is not None:
            scene = shift_in_time(scene, edit.object, edit.time_shift_frames)
    return scene
