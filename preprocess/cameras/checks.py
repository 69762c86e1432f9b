"""Acceptance checks of an SfM reconstruction, independent of the library that made it.

COLMAP reports success on results that are useless here (0 points, fragments, an unconstrained focal length,
poses that jump), so a reconstruction is accepted only when every check below passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from preprocess.cameras.config import ChecksConfig
from preprocess.cameras.intrinsics import fov_from_focal


@dataclass
class SfmModel:
    """The largest model of an SfM run, in scene4d's conventions.

    Attributes:
        K: (3, 3) shared intrinsics.
        viewmats: (T, 4, 4) world-to-camera matrices; meaningful only where ``registered``.
        registered: (T,) bool, frames the model has a pose for.
        points: (P, 3) triangulated world points.
        reprojection_px: mean reprojection error of the points' observations, in pixels.
        num_models: how many separate models the run produced (fragments).
        width, height: image size.
    """

    K: np.ndarray
    viewmats: np.ndarray
    registered: np.ndarray
    points: np.ndarray
    reprojection_px: float
    num_models: int
    width: int
    height: int

    @property
    def num_frames(self) -> int:
        return len(self.registered)


def _angle_deg(relative: np.ndarray) -> np.ndarray:
    cos = np.clip((np.trace(relative, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)
    return np.degrees(np.arccos(cos))


def camera_steps(viewmats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Motion between consecutive cameras.

    Args:
        viewmats: (T, 4, 4) world-to-camera matrices.

    Returns:
        ``(translation, rotation_deg)``: (T-1,) distances between camera centres and (T-1,) angles in degrees.
    """
    rotations = viewmats[:, :3, :3]
    centres = -np.einsum("tji,tj->ti", rotations, viewmats[:, :3, 3])
    translation = np.linalg.norm(np.diff(centres, axis=0), axis=-1)
    rotation = _angle_deg(rotations[1:] @ rotations[:-1].transpose(0, 2, 1))
    return translation, rotation


def find_jumps(steps: np.ndarray, ratio: float, window: int, floor: float) -> np.ndarray:
    """Indices of steps larger than ``ratio`` times the median of up to ``window`` neighbours on each side.

    Steps below ``floor`` never count (noise on a camera that barely moves).

    Args:
        steps: (S,) non-negative step sizes.

    Returns:
        (J,) indices into ``steps``.
    """
    jumps = []
    for i, step in enumerate(steps):
        neighbours = np.concatenate([steps[max(i - window, 0):i], steps[i + 1:i + 1 + window]])
        if len(neighbours) and step > floor and step > ratio * np.median(neighbours):
            jumps.append(i)
    return np.asarray(jumps, dtype=np.int64)


def median_depth(model: SfmModel) -> float:
    """Median depth of the model's points over its registered cameras (nan without points)."""
    if len(model.points) == 0 or not model.registered.any():
        return float("nan")
    views = model.viewmats[model.registered]
    depths = np.einsum("cj,nj->cn", views[:, 2, :3], model.points) + views[:, 2, 3][:, None]
    in_front = depths[depths > 0]
    return float(np.median(in_front)) if len(in_front) else float("nan")


def _result(passed: bool, value, limit, detail: str = "") -> dict:
    if isinstance(value, float) and not np.isfinite(value):
        value = None  # JSON has no infinity; "no value" reads the same in a report
    row = {"passed": bool(passed), "value": value, "limit": limit}
    if detail:
        row["detail"] = detail
    return row


def check_model(model: SfmModel, config: ChecksConfig) -> dict[str, dict]:
    """Run every acceptance check.

    Returns:
        ``{name: {"passed", "value", "limit"[, "detail"]}}`` for ``registered``, ``points``, ``reprojection``,
        ``focal`` and ``smooth``; JSON-serialisable.
    """
    num_registered = int(model.registered.sum())
    fraction = num_registered / max(model.num_frames, 1)
    required_points = max(config.min_points, int(np.ceil(config.min_points_per_frame * num_registered)))
    fovs = [fov_from_focal(model.K[i, i], model.width, model.height) for i in (0, 1)]
    checks = {
        "registered": _result(fraction >= config.min_registered_fraction, round(fraction, 4),
                              config.min_registered_fraction,
                              f"{num_registered}/{model.num_frames} frames in the largest of "
                              f"{model.num_models} model(s)"),
        "points": _result(len(model.points) >= required_points, len(model.points), required_points),
        "reprojection": _result(bool(model.reprojection_px <= config.max_reprojection_px),
                                round(float(model.reprojection_px), 4), config.max_reprojection_px),
        "focal": _result(all(config.min_fov_deg <= f <= config.max_fov_deg for f in fovs),
                         round(min(fovs), 2) if min(fovs) < config.min_fov_deg else round(max(fovs), 2),
                         [config.min_fov_deg, config.max_fov_deg], f"diagonal field of view, focal "
                         f"{model.K[0, 0]:.1f} px"),
    }
    checks["smooth"] = _check_smooth(model, config)
    return checks


def _check_smooth(model: SfmModel, config: ChecksConfig) -> dict:
    if model.registered.sum() < 3:
        return _result(False, None, config.max_step_ratio, "fewer than 3 registered frames")
    translation, rotation = camera_steps(model.viewmats[model.registered])
    depth = median_depth(model)
    scale = depth if np.isfinite(depth) and depth > 0 else float(np.median(translation) or 1.0)
    moves = find_jumps(translation, config.max_step_ratio, config.step_window, config.min_jump_translation * scale)
    turns = find_jumps(rotation, config.max_step_ratio, config.step_window, config.min_jump_rotation_deg)
    frames = np.flatnonzero(model.registered)
    jumps = sorted({int(frames[i + 1]) for i in np.concatenate([moves, turns])})
    return _result(not jumps, len(jumps), 0, f"pose jumps into frames {jumps}" if jumps else "")


def failed(checks: dict[str, dict]) -> list[str]:
    """Names of the checks that did not pass."""
    return [name for name, row in checks.items() if not row["passed"]]
