"""CoTracker point tracks: grid queries on each object and on the background, tracked through the clip.

CoTracker is not on PyPI (neither ``cotracker`` nor ``co-tracker``): this backend needs the official package,
installed from a clone of ``facebookresearch/co-tracker`` (``pip install -e .`` in it), and a checkpoint of the
offline model, either a local ``.pth`` (CoTracker3's ``scaled_offline.pth``) or the ``facebook/cotracker3``
repository in the Hugging Face cache. :func:`available` says which of the two is missing.

Queries are pixel centres on a regular grid: for each object, inside its mask on the frame where it is largest;
for the background, outside every object on the frame where the background is largest. CoTracker's
coordinates put pixel j at ``x = j`` (it rescales with ``align_corners=True``), ours at ``j + 0.5``; the
conversions are :func:`to_cotracker_queries` and :func:`from_cotracker_tracks`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np
import torch

from preprocess.learned.weights import (WeightsUnavailable, load_state_dict_strict, locate_file, pick_device,
                                        read_state_dict)
from scene4d.contracts.frames import Frames
from scene4d.contracts.masks import ObjectMasks
from scene4d.contracts.tracks import PointTracks

_INSTALL_HINT = ("the cotracker package is not installed; it is not on PyPI: clone facebookresearch/co-tracker "
                 "and run `pip install -e .` in it")


@dataclass
class CoTrackerBackendConfig:
    """CoTracker backend settings."""

    checkpoint: str = "facebook/cotracker3"
    """A local ``.pth`` file, or a Hugging Face model id whose repository holds ``filename`` (found in the cache)."""
    filename: str = "scaled_offline.pth"
    """The checkpoint file inside the model id's repository (ignored for a local file)."""
    allow_download: bool = False
    """Download a checkpoint missing from the cache (needs network; off by default, never in tests)."""
    cache_dir: str = ""
    """Hugging Face cache folder to look in; empty for the default one."""
    device: str = "auto"
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ..."""
    window_len: int = 60
    """Temporal window of the offline model (60 for CoTracker3's ``scaled_offline.pth``)."""
    points_per_object: int = 256
    """About this many grid queries on each object."""
    background_points: int = 512
    """About this many grid queries on the background."""


class CoTrackerTracker:
    """Holds a ``cotracker.predictor.CoTrackerPredictor``.

    Attributes:
        predictor: the official predictor module (it resizes the clip to the model's resolution).
        device: where it runs.
    """

    def __init__(self, predictor, device: torch.device | str = "cpu") -> None:
        self.predictor = predictor.to(device).eval()
        self.device = torch.device(device)

    @torch.inference_mode()
    def track(self, images: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tracks of query points, in both time directions from each query's frame.

        Args:
            images: (T, H, W, 3) uint8 RGB.
            queries: (N, 3) ``(t, x, y)``, our pixel coordinates.

        Returns:
            ``(tracks, visibility)``: (N, T, 2) float32 in our coordinates and (N, T) bool.
        """
        video = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)[None].float().to(self.device)
        query_tensor = torch.from_numpy(to_cotracker_queries(queries))[None].float().to(self.device)
        tracks, visibility = self.predictor(video, queries=query_tensor, backward_tracking=True)
        return from_cotracker_tracks(tracks[0].cpu().numpy()), visibility[0].cpu().numpy().astype(bool).T


def to_cotracker_queries(queries: np.ndarray) -> np.ndarray:
    """(N, 3) ``(t, x, y)`` in our coordinates -> CoTracker's (pixel j at ``x = j``)."""
    converted = np.asarray(queries, dtype=np.float32).copy()
    converted[:, 1:] -= 0.5
    return converted


def from_cotracker_tracks(tracks: np.ndarray) -> np.ndarray:
    """(T, N, 2) CoTracker positions -> (N, T, 2) in our coordinates."""
    return (np.asarray(tracks, dtype=np.float32) + 0.5).transpose(1, 0, 2)


def grid_queries(masks: ObjectMasks | None, num_frames: int, width: int, height: int, points_per_object: int,
                 background_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid queries per object and on the background.

    Args:
        masks: the objects (None: background only, over the whole frame).
        num_frames, width, height: the clip's size.
        points_per_object, background_points: about how many queries each region gets.

    Returns:
        ``(queries, labels)``: (N, 3) float32 ``(t, x, y)`` at pixel centres and (N,) int32 object id (0 for the
        background).
    """
    regions: list[tuple[int, np.ndarray, int]] = []
    if masks is not None:
        for object_id, mask in zip(masks.object_ids, masks.masks):
            regions.append((object_id, mask, points_per_object))
        background = ~masks.union()
    else:
        background = np.ones((num_frames, height, width), dtype=bool)
    regions.append((0, background, background_points))
    queries, labels = [], []
    for label, region, count in regions:
        areas = region.reshape(len(region), -1).sum(axis=1)
        frame = int(np.argmax(areas))
        if areas[frame] == 0 or count <= 0:
            continue
        step = max(1, int(round(np.sqrt(areas[frame] / count))))
        rows, cols = np.nonzero(region[frame])
        on_grid = (rows % step == step // 2) & (cols % step == step // 2)
        if not on_grid.any():
            on_grid[len(rows) // 2] = True
        rows, cols = rows[on_grid], cols[on_grid]
        queries.append(np.stack([np.full(len(rows), frame), cols + 0.5, rows + 0.5], axis=1))
        labels.append(np.full(len(rows), label))
    return np.concatenate(queries).astype(np.float32), np.concatenate(labels).astype(np.int32)


def available(config: CoTrackerBackendConfig) -> tuple[bool, str]:
    """Whether :func:`build_cotracker` can run here, and why (not)."""
    if importlib.util.find_spec("cotracker") is None:
        return False, _INSTALL_HINT
    try:
        path = locate_file(config.checkpoint, config.filename, False, config.cache_dir)
    except WeightsUnavailable as error:
        if config.allow_download and config.checkpoint:
            return True, f"{config.checkpoint}/{config.filename} will be downloaded"
        return False, f"CoTracker weights: {error}"
    return True, f"CoTracker weights at {path}"


def build_cotracker(config: CoTrackerBackendConfig) -> CoTrackerTracker:
    """The official predictor with the configured checkpoint, loaded strictly.

    Raises:
        WeightsUnavailable: the package or the weights missing, or weights not matching the model.
    """
    if importlib.util.find_spec("cotracker") is None:
        raise WeightsUnavailable(_INSTALL_HINT)
    from cotracker.predictor import CoTrackerPredictor

    path = locate_file(config.checkpoint, config.filename, config.allow_download, config.cache_dir)
    predictor = CoTrackerPredictor(checkpoint=None, offline=True, window_len=config.window_len)
    load_state_dict_strict(predictor.model, read_state_dict(path), str(path))
    return CoTrackerTracker(predictor, pick_device(config.device))


def track_points_cotracker(frames: Frames, masks: ObjectMasks | None, config: CoTrackerBackendConfig,
                           tracker: CoTrackerTracker | None = None) -> PointTracks:
    """Tracks on a grid per object and on the background, labelled by object id (0 = background).

    Args:
        frames: the clip.
        masks: the objects, or None for background tracks only.
        config: backend settings.
        tracker: a built tracker (default: :func:`build_cotracker` of ``config``).
    """
    if masks is not None:
        masks.validate(frames.num_frames, (frames.width, frames.height))
    queries, labels = grid_queries(masks, frames.num_frames, frames.width, frames.height,
                                   config.points_per_object, config.background_points)
    tracker = tracker or build_cotracker(config)
    tracks, visibility = tracker.track(frames.images, queries)
    return PointTracks(tracks, visibility, labels, method="cotracker")
