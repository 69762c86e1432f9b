"""The point-tracking stage: choose a backend, check the inputs, return tracks and why that backend ran."""

from __future__ import annotations

from preprocess.tracks.config import TracksConfig
from preprocess.tracks.flow_tracker import track_with_flow
from scene4d.contracts.frames import Frames
from scene4d.contracts.masks import ObjectMasks
from scene4d.contracts.tracks import PointTracks
from scene4d.errors import InputError


def track_points(frames: Frames, masks: ObjectMasks | None, config: TracksConfig
                 ) -> tuple[PointTracks, str, str]:
    """Long-term 2D tracks of points on every object and on the background.

    Args:
        frames: the clip, T frames of H x W.
        masks: per-object masks (O, T, H, W), or None (every track is background, no mask checks).
        config: backend and tracker settings.

    Returns:
        ``(tracks, backend, reason)``: tracks (N, T, 2) with visibility (N, T) and labels (N,) (object id, 0 for
        the background); the backend that ran (``flow``) and a sentence saying why.

    Raises:
        InputError: invalid settings, masks that do not match the frames, or frames without trackable texture.
    """
    config.check()
    if masks is not None:
        masks.validate(num_frames=frames.num_frames, size=(frames.width, frames.height))
    label_maps = None if masks is None else masks.label_map()
    object_ids = [] if masks is None else list(masks.object_ids)
    tracks = track_with_flow(frames.images, label_maps, object_ids, config)
    if tracks.num_tracks == 0:
        raise InputError("tracks: no point could be tracked (are the frames flat or a single colour?)")
    choice = "requested" if config.backend == "flow" else "auto: no learned tracker is available"
    reason = (f"{choice}; DIS flow ({config.flow_preset}, finest level {config.flow_finest_scale}) chained with "
              f"forward-backward checks: {tracks.num_tracks} tracks")
    return tracks, "flow", reason
