"""Point and box prompts per object (``--objects prompts.json``) and their conversion to SAM's coordinates.

The file::

    {"objects": [
        {"id": 1, "name": "kid", "frame": 0,
         "points": [[x, y], ...], "labels": [1, ...],
         "box": [x0, y0, x1, y1]},
        ...
    ]}

- ``id``: integer >= 1, distinct per object; it becomes the object's id in the masks (0 is the background).
- ``name``: optional, default ``object_<id>``.
- ``frame``: optional, default 0; index ``t`` (after stride and time range) of the frame the prompt refers to.
- ``points``: optional list of ``[x, y]`` in the continuous pixel coordinates of ``scene4d.conventions``
  (the centre of pixel (row i, column j) is ``(j + 0.5, i + 0.5)``), in the decoded (possibly resized) frames.
- ``labels``: optional, one per point: 1 = on the object, 0 = not on it (default: all 1).
- ``box``: optional ``[x0, y0, x1, y1]`` with ``x0 < x1`` and ``y0 < y1``, the rectangle covering the object in
  the same coordinates (a box around pixel (0, 0) alone is ``[0, 0, 1, 1]``).

Each object needs points, a box, or both. The SAM family (segment-anything, transformers' SAM and SAM2) takes
pixel-index coordinates (pixel j at ``x = j``, shifted by +0.5 inside the prompt encoder) and a box given by the
centres of its first and last pixels; :func:`to_sam_points` and :func:`to_sam_box` convert.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scene4d.errors import InputError


@dataclass
class ObjectPrompt:
    """Where one object is, on one frame.

    Attributes:
        object_id: id >= 1.
        name: human-readable name.
        frame: index of the prompted frame.
        points: (P, 2) float64 ``(x, y)``, pixel centres at +0.5 (P may be 0).
        labels: (P,) int64, 1 = object, 0 = not object.
        box: (4,) float64 ``(x0, y0, x1, y1)`` or None.
    """

    object_id: int
    name: str
    frame: int
    points: np.ndarray
    labels: np.ndarray
    box: np.ndarray | None = None


def parse_prompts(data: dict) -> list[ObjectPrompt]:
    """Prompts from the JSON structure above.

    Raises:
        InputError: naming the first malformed entry.
    """
    if not isinstance(data, dict) or not isinstance(data.get("objects"), list) or not data["objects"]:
        raise InputError('prompts: expected {"objects": [...]} with at least one object')
    prompts, seen = [], set()
    for k, entry in enumerate(data["objects"]):
        where = f"prompts: objects[{k}]"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: expected an object, got {type(entry).__name__}")
        object_id = entry.get("id")
        if not isinstance(object_id, int) or isinstance(object_id, bool) or object_id < 1:
            raise InputError(f"{where}: id must be an integer >= 1, got {object_id!r}")
        if object_id in seen:
            raise InputError(f"{where}: id {object_id} appears twice")
        seen.add(object_id)
        frame = entry.get("frame", 0)
        if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
            raise InputError(f"{where}: frame must be an integer >= 0, got {frame!r}")
        if not _is_point_list(entry.get("points", [])):
            raise InputError(f"{where}: points must be a list of [x, y] numbers, got {entry.get('points')!r}")
        points = np.asarray(entry.get("points", []), dtype=np.float64).reshape(-1, 2)
        labels = np.asarray(entry.get("labels", [1] * len(points)), dtype=np.int64).reshape(-1)
        if labels.shape != (len(points),) or not np.isin(labels, (0, 1)).all():
            raise InputError(f"{where}: labels must be {len(points)} values of 0 or 1, got {entry.get('labels')!r}")
        box = entry.get("box")
        if box is not None:
            box = np.asarray(box, dtype=np.float64)
            if box.shape != (4,) or not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
                raise InputError(f"{where}: box must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1, "
                                 f"got {entry['box']!r}")
        if len(points) == 0 and box is None:
            raise InputError(f"{where}: give points, a box, or both")
        prompts.append(ObjectPrompt(object_id, str(entry.get("name") or f"object_{object_id}"), frame,
                                    points, labels, box))
    return prompts


def load_prompts(path: str | Path) -> list[ObjectPrompt]:
    """Prompts from a JSON file (see the module docstring).

    Raises:
        InputError: unreadable file or malformed content.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"prompts: cannot read {path} ({error})") from None
    return parse_prompts(data)


def check_prompts(prompts: list[ObjectPrompt], num_frames: int, width: int, height: int) -> None:
    """Raise :class:`InputError` when a prompt refers to a missing frame or lies outside the image."""
    for prompt in prompts:
        where = f"prompts: object {prompt.object_id}"
        if prompt.frame >= num_frames:
            raise InputError(f"{where}: frame {prompt.frame}, the clip has {num_frames} frames")
        corners = prompt.points if prompt.box is None else np.vstack([prompt.points, prompt.box.reshape(2, 2)])
        outside = (corners[:, 0] < 0) | (corners[:, 0] > width) | (corners[:, 1] < 0) | (corners[:, 1] > height)
        if outside.any():
            raise InputError(f"{where}: {corners[outside][0].tolist()} lies outside the {width}x{height} frame")


def to_sam_points(points: np.ndarray) -> np.ndarray:
    """(P, 2) our coordinates -> SAM's pixel-index coordinates (pixel j at ``x = j``)."""
    return np.asarray(points, dtype=np.float64) - 0.5


def to_sam_box(box: np.ndarray) -> np.ndarray:
    """(4,) our ``[x0, y0, x1, y1)`` rectangle -> SAM's box through the centres of its first and last pixels."""
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    return np.array([x0, y0, max(x1 - 1.0, x0), max(y1 - 1.0, y0)])


def _is_point_list(value) -> bool:
    return isinstance(value, list) and all(
        isinstance(p, list) and len(p) == 2
        and all(isinstance(c, (int, float)) and not isinstance(c, bool) and np.isfinite(c) for c in p)
        for p in value)
