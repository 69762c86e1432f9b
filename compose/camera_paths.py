"""Camera paths for novel-view videos: the input path, a held camera, orbits, bullet-time, evaluation views, JSON.

Every path is a :class:`CameraPath` of F frames: world-to-camera ``viewmats`` (F, 4, 4) in OpenCV axes,
intrinsics ``Ks`` (F, 3, 3) in pixels and normalised scene ``times`` (F,) in [0, 1] (see
:mod:`scene4d.conventions`). Paths keep the dtype and device of the cameras they start from.

Orbits, bullet-time and the evaluation views move a reference camera rigidly about a centre point (see
:func:`rotate_about`): at zero angles the camera is exactly the reference, so a 0-degree orbit reproduces the
input view. Angles follow the right-hand rule: a positive azimuth turns the camera counter-clockwise about
the world up axis seen from above; a positive elevation raises it (it then looks down on the centre).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix
from scipy.interpolate import CubicHermiteSpline

from scene4d.conventions import normalized_time
from scene4d.errors import InputError

# DreamScene4D's novel views for evaluation: (elevation, azimuth) in degrees about the object/scene centre.
EVALUATION_ANGLES = ((0.0, 45.0), (0.0, -45.0), (45.0, 0.0), (-45.0, 0.0))


class CameraPath(NamedTuple):
    """Cameras and scene times of a video.

    Attributes:
        viewmats: (F, 4, 4) world-to-camera matrices, OpenCV axes.
        Ks: (F, 3, 3) intrinsics in pixels.
        times: (F,) normalised scene time shown in each frame.
    """

    viewmats: torch.Tensor
    Ks: torch.Tensor
    times: torch.Tensor


def _check_cameras(viewmats: torch.Tensor, Ks: torch.Tensor) -> None:
    if viewmats.dim() != 3 or viewmats.shape[1:] != (4, 4):
        raise ValueError(f"viewmats: expected (F, 4, 4), got {tuple(viewmats.shape)}")
    if Ks.shape != (viewmats.shape[0], 3, 3):
        raise ValueError(f"Ks: expected ({viewmats.shape[0]}, 3, 3), got {tuple(Ks.shape)}")


def _check_reference(viewmat: torch.Tensor, K: torch.Tensor, center: torch.Tensor, up: torch.Tensor) -> None:
    if viewmat.shape != (4, 4) or K.shape != (3, 3):
        raise ValueError(f"expected a (4, 4) viewmat and a (3, 3) K, got {tuple(viewmat.shape)} and {tuple(K.shape)}")
    if center.shape != (3,) or up.shape != (3,):
        raise ValueError(f"center and up: expected (3,) each, got {tuple(center.shape)} and {tuple(up.shape)}")


def world_up(viewmats: torch.Tensor) -> torch.Tensor:
    """The world's up direction seen by a video's cameras.

    How "up" is chosen: a video is filmed with the camera held roughly upright, so each camera's image-down
    axis (OpenCV +y, which is row 1 of the world-to-camera rotation read in world coordinates) points roughly
    along gravity. Averaging over the clip smooths out roll and tilt, and the negative of that average is
    up. A reconstruction from one video has no other notion of gravity.

    Args:
        viewmats: (T, 4, 4) world-to-camera matrices.

    Returns:
        (3,) unit vector.
    """
    if viewmats.dim() != 3 or viewmats.shape[1:] != (4, 4) or viewmats.shape[0] == 0:
        raise ValueError(f"viewmats: expected (T, 4, 4) with T >= 1, got {tuple(viewmats.shape)}")
    down = viewmats[:, 1, :3].mean(dim=0)
    norm = torch.linalg.norm(down)
    if norm < 1e-6:
        raise ValueError("the cameras' y axes cancel out on average; the world up is undefined")
    return -down / norm


def look_at(positions: torch.Tensor, targets: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """World-to-camera matrices of cameras at ``positions`` looking at ``targets``, upright with respect to ``up``.

    Args:
        positions: (F, 3) camera centres.
        targets: (F, 3) points that land on the optical axis.
        up: (F, 3) or (3,) world directions that appear upwards in the image (need not be unit length).

    Returns:
        (F, 4, 4) matrices, OpenCV axes: x right, y down, z towards the target.
    """
    if positions.dim() != 2 or positions.shape[1] != 3 or targets.shape != positions.shape:
        raise ValueError(f"positions and targets: expected (F, 3) each, got {tuple(positions.shape)} and "
                         f"{tuple(targets.shape)}")
    up = torch.as_tensor(up, dtype=positions.dtype, device=positions.device).expand_as(positions)
    offset = targets - positions
    distance = torch.linalg.norm(offset, dim=-1, keepdim=True)
    if bool((distance <= 1e-12).any()):
        raise ValueError("look_at: a camera position equals its target")
    forward = offset / distance
    right = torch.linalg.cross(forward, up)
    right_norm = torch.linalg.norm(right, dim=-1, keepdim=True)
    if bool((right_norm <= 1e-9 * torch.linalg.norm(up, dim=-1, keepdim=True)).any()):
        raise ValueError("look_at: the up vector is parallel to the viewing direction")
    right = right / right_norm
    down = torch.linalg.cross(forward, right)
    rotation = torch.stack([right, down, forward], dim=1)
    viewmats = torch.eye(4, dtype=positions.dtype, device=positions.device).repeat(positions.shape[0], 1, 1)
    viewmats[:, :3, :3] = rotation
    viewmats[:, :3, 3] = -torch.einsum("fij,fj->fi", rotation, positions)
    return viewmats


def rotate_about(viewmats: torch.Tensor, center: torch.Tensor, up: torch.Tensor, elevations_deg: torch.Tensor,
                 azimuths_deg: torch.Tensor) -> torch.Tensor:
    """Move cameras rigidly about ``center``: first up by an elevation, then around ``up`` by an azimuth.

    The elevation turns about the horizontal axis ``(camera centre - center) x up``, so it moves the camera
    over the centre along a meridian; the camera keeps its pose relative to the centre (a camera that looked
    at the centre still does). For a camera exactly above or below the centre that axis is undefined and the
    camera's own left axis is used instead.

    Args:
        viewmats: (F, 4, 4) world-to-camera matrices.
        center: (3,) point to turn about.
        up: (3,) unit world up.
        elevations_deg, azimuths_deg: (F,) angles in degrees.

    Returns:
        (F, 4, 4) world-to-camera matrices; zero angles return ``viewmats`` exactly.
    """
    if viewmats.dim() != 3 or viewmats.shape[1:] != (4, 4):
        raise ValueError(f"viewmats: expected (F, 4, 4), got {tuple(viewmats.shape)}")
    num = viewmats.shape[0]
    if elevations_deg.shape != (num,) or azimuths_deg.shape != (num,):
        raise ValueError(f"angles: expected ({num},) each, got {tuple(elevations_deg.shape)} and "
                         f"{tuple(azimuths_deg.shape)}")
    center, up = center.to(viewmats), up.to(viewmats)
    camtoworlds = torch.linalg.inv(viewmats)
    offsets = camtoworlds[:, :3, 3] - center
    axes = torch.linalg.cross(offsets, up.expand_as(offsets))
    norms = torch.linalg.norm(axes, dim=-1, keepdim=True)
    degenerate = norms <= 1e-9 * torch.linalg.norm(offsets, dim=-1, keepdim=True)
    axes = torch.where(degenerate, -camtoworlds[:, :3, 0], axes / norms.clamp_min(1e-30))
    elevation = axis_angle_to_rotation_matrix(axes * torch.deg2rad(elevations_deg.to(viewmats))[:, None])
    azimuth = axis_angle_to_rotation_matrix(up * torch.deg2rad(azimuths_deg.to(viewmats))[:, None])
    rotations = azimuth @ elevation
    # The camera moves by M = [Q | c - Q c]; its world-to-camera matrix becomes viewmat @ M^-1.
    inverse = torch.eye(4, dtype=viewmats.dtype, device=viewmats.device).repeat(num, 1, 1)
    inverse[:, :3, :3] = rotations.transpose(1, 2)
    inverse[:, :3, 3] = center - torch.einsum("fji,j->fi", rotations, center)
    return viewmats @ inverse


def input_path(viewmats: torch.Tensor, Ks: torch.Tensor) -> CameraPath:
    """The input cameras, one frame each, at the frames' own times.

    Args:
        viewmats: (T, 4, 4); Ks: (T, 3, 3).
    """
    _check_cameras(viewmats, Ks)
    num = viewmats.shape[0]
    return CameraPath(viewmats, Ks, normalized_time(torch.arange(num), num).to(viewmats))


def fixed_path(viewmats: torch.Tensor, Ks: torch.Tensor, frame: int, num_frames: int | None = None) -> CameraPath:
    """A stabilised video: the input camera of ``frame`` held still while time runs from 0 to 1.

    Args:
        viewmats: (T, 4, 4); Ks: (T, 3, 3).
        frame: which input camera to hold, in [0, T).
        num_frames: frames of the video (T when None).
    """
    _check_cameras(viewmats, Ks)
    num_inputs = viewmats.shape[0]
    if not 0 <= frame < num_inputs:
        raise ValueError(f"frame must be in [0, {num_inputs}), got {frame}")
    num = num_inputs if num_frames is None else num_frames
    if num < 1:
        raise ValueError(f"num_frames must be >= 1, got {num}")
    times = normalized_time(torch.arange(num), num).to(viewmats)
    return CameraPath(viewmats[frame].expand(num, 4, 4).clone(), Ks[frame].expand(num, 3, 3).clone(), times)


def arc_path(viewmat: torch.Tensor, K: torch.Tensor, center: torch.Tensor, up: torch.Tensor,
             elevations_deg: torch.Tensor, azimuths_deg: torch.Tensor, times: torch.Tensor) -> CameraPath:
    """A reference camera turned about ``center`` by per-frame angles (see :func:`rotate_about`).

    Args:
        viewmat: (4, 4) reference world-to-camera matrix; K: (3, 3) its intrinsics (kept).
        center: (3,); up: (3,) unit.
        elevations_deg, azimuths_deg, times: (F,) each.
    """
    _check_reference(viewmat, K, center, up)
    num = times.shape[0]
    viewmats = rotate_about(viewmat.expand(num, 4, 4), center, up, elevations_deg, azimuths_deg)
    return CameraPath(viewmats, K.expand(num, 3, 3).clone(), times.to(viewmat))


def orbit_path(viewmat: torch.Tensor, K: torch.Tensor, center: torch.Tensor, up: torch.Tensor, num_frames: int,
               azimuth_sweep_deg: float = 360.0, elevation_range_deg: tuple[float, float] = (0.0, 0.0),
               time: float | None = 0.5) -> CameraPath:
    """An orbit starting at the reference camera.

    The azimuth grows linearly from 0 by ``azimuth_sweep_deg * i / F`` (so a 360-degree orbit loops without a
    repeated frame); the elevation starts at ``elevation_range_deg[0]``, reaches ``[1]`` half way round and
    comes back (a cosine), so the video loops too.

    Args:
        viewmat: (4, 4) reference camera; K: (3, 3); center: (3,); up: (3,) unit.
        num_frames: F >= 1.
        time: normalised scene time held during the orbit, or None to run time from 0 to 1.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    fraction = torch.arange(num_frames, dtype=viewmat.dtype, device=viewmat.device) / num_frames
    low, high = elevation_range_deg
    elevations = low + (high - low) * 0.5 * (1.0 - torch.cos(2.0 * math.pi * fraction))
    azimuths = azimuth_sweep_deg * fraction
    times = (normalized_time(torch.arange(num_frames), num_frames).to(viewmat) if time is None
             else torch.full((num_frames,), float(time), dtype=viewmat.dtype, device=viewmat.device))
    return arc_path(viewmat, K, center, up, elevations, azimuths, times)


def bullet_time_path(viewmat: torch.Tensor, K: torch.Tensor, center: torch.Tensor, up: torch.Tensor,
                     num_frames: int, time: float, azimuth_sweep_deg: float = 60.0,
                     elevation_deg: float = 0.0) -> CameraPath:
    """Time frozen at ``time`` while the camera sweeps an arc from ``-sweep / 2`` to ``+sweep / 2`` in azimuth
    around the reference camera, at a constant elevation.

    Args:
        viewmat: (4, 4) reference camera; K: (3, 3); center: (3,); up: (3,) unit.
        num_frames: F >= 1 (a single frame sits at azimuth 0).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    half = 0.5 * azimuth_sweep_deg if num_frames > 1 else 0.0
    azimuths = torch.linspace(-half, half, num_frames, dtype=viewmat.dtype, device=viewmat.device)
    elevations = torch.full_like(azimuths, elevation_deg)
    return arc_path(viewmat, K, center, up, elevations, azimuths, torch.full_like(azimuths, float(time)))


def evaluation_views(viewmat: torch.Tensor, K: torch.Tensor, center: torch.Tensor, up: torch.Tensor,
                     time: float, angles: tuple[tuple[float, float], ...] = EVALUATION_ANGLES) -> CameraPath:
    """DreamScene4D's novel views: the input view turned by each (elevation, azimuth) of ``angles`` about the
    object/scene centre, at one time, in the order of ``angles``.

    Args:
        viewmat: (4, 4) input camera; K: (3, 3); center: (3,); up: (3,) unit.
    """
    values = torch.tensor(angles, dtype=viewmat.dtype, device=viewmat.device).reshape(-1, 2)
    times = torch.full((values.shape[0],), float(time), dtype=viewmat.dtype, device=viewmat.device)
    return arc_path(viewmat, K, center, up, values[:, 0], values[:, 1], times)


def scale_intrinsics(Ks: torch.Tensor, width: int, height: int, scale: float) -> tuple[torch.Tensor, int, int]:
    """Intrinsics for the image resized by ``scale`` (sizes rounded, at least 1 pixel).

    Pixel centres sit at +0.5, so resizing scales continuous pixel coordinates exactly by the size ratio.

    Args:
        Ks: (..., 3, 3) intrinsics of a ``width`` x ``height`` image.

    Returns:
        ``(Ks (..., 3, 3), new_width, new_height)``.
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    factors = torch.tensor([new_width / width, new_height / height, 1.0], dtype=Ks.dtype, device=Ks.device)
    return Ks * factors[:, None], new_width, new_height


_KEYFRAME_KEYS = {"time", "position", "look_at", "up", "fov_deg", "scene_time"}


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"camera path: {what} must be a finite number, got {value!r}")
    return float(value)


def _vector(value, what: str) -> list[float]:
    if not isinstance(value, list) or len(value) != 3:
        raise InputError(f"camera path: {what} must be a list of 3 numbers, got {value!r}")
    return [_number(v, what) for v in value]


def _read_spec(source: str | Path | Mapping) -> Mapping:
    if isinstance(source, Mapping):
        return source
    path = Path(source)
    if not path.is_file():
        raise InputError(f"camera path: {path} does not exist")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"camera path: {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(spec, dict):
        raise InputError(f"camera path: {path} must hold a JSON object, got {type(spec).__name__}")
    return spec


def _catmull_rom(seconds: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Catmull-Rom interpolation through (seconds, values) keyframes spaced unevenly in time."""
    tangents = np.empty_like(values)
    tangents[1:-1] = (values[2:] - values[:-2]) / (seconds[2:] - seconds[:-2])[:, None]
    tangents[0] = (values[1] - values[0]) / (seconds[1] - seconds[0])
    tangents[-1] = (values[-1] - values[-2]) / (seconds[-1] - seconds[-2])
    return CubicHermiteSpline(seconds, values, tangents, axis=0)(at)


def path_from_json(source: str | Path | Mapping, width: int, height: int, up: torch.Tensor,
                   fov_deg: float) -> tuple[CameraPath, float]:
    """A camera path given as keyframes, interpolated smoothly.

    Schema (a JSON object; unknown keys are errors)::

        {"fps": 24,                         frames per second of the video, > 0
         "keyframes": [                     two or more, in strictly increasing "time"
           {"time": 0.0,                    seconds into the video (the video starts at the first keyframe)
            "position": [x, y, z],          camera centre, world coordinates
            "look_at": [x, y, z],           point shown at the image centre
            "up": [x, y, z],                optional: world direction shown upwards (default: ``up``)
            "fov_deg": 50,                  optional: vertical field of view, degrees (default: ``fov_deg``)
            "scene_time": 0.0},             optional, on every keyframe or none: normalised scene time shown;
           ...]}                            without it time runs from 0 at the first keyframe to 1 at the last

    Frames sit at ``time_0 + i / fps`` up to the last keyframe. Positions and look-at points follow
    Catmull-Rom splines through the keyframes (tangents from the neighbouring keyframes, uneven spacing
    allowed); up vectors, field of view and scene time are interpolated linearly; each frame's orientation
    is the look-at rotation. Square pixels, principal point at the image centre.

    Args:
        source: a JSON file or the parsed object.
        width, height: image size of the video.
        up: (3,) default up direction (e.g. :func:`world_up` of the input cameras).
        fov_deg: default vertical field of view in degrees.

    Returns:
        ``(path, fps)``: a float64 :class:`CameraPath` and the frame rate of its video.

    Raises:
        InputError: a one-line message naming the first problem in the file.
    """
    spec = _read_spec(source)
    unknown = set(spec) - {"fps", "keyframes"}
    if unknown:
        raise InputError(f"camera path: unknown keys {sorted(unknown)} (expected 'fps' and 'keyframes')")
    if "fps" not in spec:
        raise InputError("camera path: 'fps' is missing")
    fps = _number(spec["fps"], "'fps'")
    if fps <= 0:
        raise InputError(f"camera path: 'fps' must be > 0, got {fps}")
    keyframes = spec.get("keyframes")
    if not isinstance(keyframes, list) or len(keyframes) < 2:
        raise InputError("camera path: 'keyframes' must be a list of at least 2 keyframes")
    default_up = [float(v) for v in up.tolist()]
    rows = []
    for i, key in enumerate(keyframes):
        where = f"keyframe {i}"
        if not isinstance(key, dict):
            raise InputError(f"camera path: {where} must be an object, got {type(key).__name__}")
        if set(key) - _KEYFRAME_KEYS:
            raise InputError(f"camera path: {where} has unknown keys {sorted(set(key) - _KEYFRAME_KEYS)}")
        for name in ("time", "position", "look_at"):
            if name not in key:
                raise InputError(f"camera path: {where} lacks '{name}'")
        position = _vector(key["position"], f"{where} 'position'")
        target = _vector(key["look_at"], f"{where} 'look_at'")
        key_up = _vector(key["up"], f"{where} 'up'") if "up" in key else default_up
        fov = _number(key.get("fov_deg", fov_deg), f"{where} 'fov_deg'")
        if not 0.0 < fov < 180.0:
            raise InputError(f"camera path: {where} 'fov_deg' must be in (0, 180), got {fov}")
        direction = np.subtract(target, position)
        if np.linalg.norm(direction) <= 1e-12:
            raise InputError(f"camera path: {where} has 'look_at' equal to 'position'")
        if np.linalg.norm(np.cross(direction, key_up)) <= 1e-9 * np.linalg.norm(direction) * np.linalg.norm(key_up):
            raise InputError(f"camera path: {where} has 'up' parallel to the viewing direction (or zero)")
        scene_time = None
        if "scene_time" in key:
            scene_time = _number(key["scene_time"], f"{where} 'scene_time'")
            if not 0.0 <= scene_time <= 1.0:
                raise InputError(f"camera path: {where} 'scene_time' must be in [0, 1], got {scene_time}")
        rows.append((_number(key["time"], f"{where} 'time'"), position, target, key_up, fov, scene_time))
    seconds = np.array([r[0] for r in rows])
    if np.any(np.diff(seconds) <= 0):
        raise InputError(f"camera path: keyframe times must increase strictly, got {seconds.tolist()}")
    given = [r[5] is not None for r in rows]
    if any(given) and not all(given):
        raise InputError("camera path: 'scene_time' must be on every keyframe or on none")

    num_frames = int(math.floor((seconds[-1] - seconds[0]) * fps + 1e-9)) + 1
    at = seconds[0] + np.arange(num_frames) / fps
    positions = _catmull_rom(seconds, np.array([r[1] for r in rows]), at)
    targets = _catmull_rom(seconds, np.array([r[2] for r in rows]), at)
    ups = np.stack([np.interp(at, seconds, [r[3][k] for r in rows]) for k in range(3)], axis=-1)
    fovs = np.interp(at, seconds, [r[4] for r in rows])
    scene_times = (np.interp(at, seconds, [r[5] for r in rows]) if all(given)
                   else (at - seconds[0]) / (seconds[-1] - seconds[0]))

    viewmats = look_at(torch.from_numpy(positions), torch.from_numpy(targets), torch.from_numpy(ups))
    focal = torch.from_numpy(0.5 * height / np.tan(np.deg2rad(fovs) / 2.0))
    Ks = torch.zeros(num_frames, 3, 3, dtype=torch.float64)
    Ks[:, 0, 0], Ks[:, 1, 1] = focal, focal
    Ks[:, 0, 2], Ks[:, 1, 2], Ks[:, 2, 2] = width / 2.0, height / 2.0, 1.0
    return CameraPath(viewmats, Ks, torch.from_numpy(scene_times)), fps
