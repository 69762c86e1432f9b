"""The depth stage: background depth from geometry or from a scene prior, then objects placed on it.

Which background:

- cameras from a COLMAP reconstruction (``Cameras.method`` starting with ``colmap``) translate: the static
  background is triangulated from background tracks and densified per frame (:mod:`preprocess.depth.geometry`);
  depth is in the cameras' units;
- otherwise (rotation-only or fixed cameras, or too few triangulated points): a scene prior
  (:mod:`preprocess.depth.prior`): ground plane ``camera_height`` metres below a camera without roll, horizon at
  an assumed row (raised if objects' ground contacts would lie above it), backdrop at ``backdrop_distance``
  metres; depth in metres under those assumptions.

Objects are then drawn on either background as rounded shapes at the depth of their ground contact
(:mod:`preprocess.depth.objects`). The assumptions made are written into ``DepthMaps.notes``.
"""

from __future__ import annotations

import numpy as np

from preprocess.depth.config import DepthConfig
from preprocess.depth.geometry import triangulated_background
from preprocess.depth.objects import base_depths, lowest_contact, paint_objects
from preprocess.depth.prior import fit_horizon, scene_prior_depth
from preprocess.tracks import TracksConfig, track_points
from scene4d.contracts.cameras import Cameras
from scene4d.contracts.depth import DepthMaps
from scene4d.contracts.frames import Frames
from scene4d.contracts.masks import ObjectMasks
from scene4d.contracts.tracks import PointTracks

GROUND_CONFIDENCE = 0.3
BACKDROP_CONFIDENCE = 0.1
OBJECT_CONFIDENCE = 0.3
"""Confidence of depths that come from assumptions rather than measurements."""


def estimate_depth(frames: Frames, masks: ObjectMasks | None, cameras: Cameras, tracks: PointTracks | None,
                   config: DepthConfig) -> tuple[DepthMaps, str, str]:
    """Per-frame depth in one scale over the clip, with confidence.

    Args:
        frames: the clip, T frames of H x W.
        masks: per-object masks (O, T, H, W), or None (no objects).
        cameras: T cameras of the same size.
        tracks: point tracks over the T frames (their background, label 0, is triangulated); None computes them
            with the default weight-free tracker when the cameras translate.
        config: backend and geometry settings.

    Returns:
        ``(depth, backend, reason)``: :class:`DepthMaps` (T, H, W); the backend that ran, ``triangulation`` or
        ``scene-prior``; a sentence saying why.

    Raises:
        InputError: invalid settings, or masks, cameras or tracks that do not match the frames.
    """
    config.check()
    size = (frames.width, frames.height)
    cameras.validate(num_frames=frames.num_frames, size=size)
    if masks is not None:
        masks.validate(num_frames=frames.num_frames, size=size)
    if tracks is not None:
        tracks.validate(num_frames=frames.num_frames)
    object_masks = np.zeros((0,) + frames.images.shape[:3], bool) if masks is None else masks.masks
    choice = "requested" if config.backend == "geometry" else "auto: no learned depth model is available"

    maps = None
    if cameras.method.startswith("colmap"):
        if tracks is None:
            tracks, _, _ = track_points(frames, masks, TracksConfig())
        maps, summary = triangulated_background(frames.images, tracks.of(0), cameras, config)
        why = f"cameras translate ({cameras.method}): {summary}"
        if maps is None:
            why += "; fell back to the scene prior"
    else:
        why = f"cameras do not translate ({cameras.method or 'method not recorded'})"

    if maps is not None:
        background, confidence = maps
        method = "triangulation"
        notes = (f"Background triangulated from tracks with the cameras and densified edge-aware; depth in the "
                 f"cameras' units. {_object_notes(config)}")
    else:
        background, confidence, notes = _scene_prior(object_masks, cameras, config)
        method = "scene-prior"

    bases = base_depths(background, object_masks, config.temporal_window)
    depth, on_object = paint_objects(background, object_masks, bases, cameras.Ks[:, 0, 0], config.bulge)
    confidence = np.where(on_object, OBJECT_CONFIDENCE, confidence).astype(np.float32)
    return DepthMaps(depth, confidence, method=method, metric=True, notes=notes), method, f"{choice}; {why}"


def _scene_prior(object_masks: np.ndarray, cameras: Cameras, config: DepthConfig
                 ) -> tuple[np.ndarray, np.ndarray, str]:
    """Ground-plane-and-backdrop depth, its confidence and notes saying what was assumed."""
    assumed = config.horizon * cameras.height
    horizon = fit_horizon(cameras.Ks, cameras.viewmats, _lowest_contacts(object_masks), assumed,
                          config.camera_height, 0.5 * config.backdrop_distance)
    depth, on_ground = scene_prior_depth(cameras.Ks, cameras.viewmats, cameras.width, cameras.height, horizon,
                                         config.camera_height, config.backdrop_distance)
    confidence = np.where(on_ground, GROUND_CONFIDENCE, BACKDROP_CONFIDENCE)
    placed = "assumed" if horizon == assumed else f"raised from the assumed row {assumed:.1f} so objects stand on it"
    notes = (f"Scene prior, depth in metres under assumptions: flat horizontal ground {config.camera_height} m below "
             f"a camera without roll; horizon at row {horizon:.1f} of the first frame ({placed}); a backdrop "
             f"{config.backdrop_distance} m away above the horizon and beyond; camera translation ignored. "
             f"{_object_notes(config)}")
    return depth, confidence, notes


def _object_notes(config: DepthConfig) -> str:
    return (f"Objects stand where their mask's bottom-centre touches the background (or the object below them), "
            f"base depths median-filtered over {config.temporal_window} frames, or fixed at the frame where it comes "
            f"lowest for an object whose contact wanders more than its height (off the ground at times); "
            f"silhouettes at that depth, centres nearer by {config.bulge} x their half-thickness (rounded "
            f"profile). An object cut off by the bottom edge stands on the bottom row, so it is placed too far.")


def _lowest_contacts(object_masks: np.ndarray) -> np.ndarray:
    """(M, 3) ``(frame, x, y)`` of each object's contact where it comes lowest in the image."""
    contacts = [lowest_contact(masks) for masks in object_masks]
    return np.array([(t, col + 0.5, row + 0.5) for t, row, col in filter(None, contacts)],
                    dtype=np.float64).reshape(-1, 3)
