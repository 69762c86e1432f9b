"""Weight-free long-term tracks: dense DIS flow chained frame to frame, forwards and backwards from query frames.

A point is visible while every step passes the forward-backward check, keeps its look (centre-weighted patch
correlation between consecutive frames), stays on the image and stays inside its object's mask widened by
``mask_margin`` pixels (background points: ``background_band`` pixels off every object). A point that fails is
carried along with the affine motion of its nearest visible neighbours of the same label for up to
``reacquire_frames`` frames; it is re-acquired where, after a Lucas-Kanade step from the frame it was last seen in,
its patch matches its last look again. Query points are laid on a grid per object and on the background in
several query frames, away from tracks already visible there; each query is followed forwards from its frame and
then backwards, so points that appear late get their earlier frames too.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import cKDTree

from preprocess.tracks.chaining import (EDGE_MARGIN, dense_flow, flow_step, inside_image, lookup, ncc, patches,
                                        predict_from_neighbours, refine_lk)
from preprocess.tracks.config import TracksConfig
from preprocess.tracks.sampling import sample_queries
from scene4d.contracts.tracks import PointTracks


MIN_PATCH_CONTRAST = 3.0
"""Gray-level standard deviation (0-255) below which a patch is too flat for its correlation to mean anything."""


@dataclass
class _Chains:
    """Tracks being followed in one direction, M of them: (M,) track index, (M, 2) position, (M,) label,
    (M,) frames lost so far, (M,) frame and (M, 2) position where each was last seen."""

    index: np.ndarray
    position: np.ndarray
    label: np.ndarray
    lost: np.ndarray
    seen_frame: np.ndarray
    seen_position: np.ndarray

    @classmethod
    def start(cls, index: np.ndarray, position: np.ndarray, label: np.ndarray, frame: int) -> "_Chains":
        count = len(index)
        return cls(index, position, label, np.zeros(count, np.int64), np.full(count, frame), position.copy())

    def _fields(self) -> tuple:
        return self.index, self.position, self.label, self.lost, self.seen_frame, self.seen_position

    def take(self, keep: np.ndarray) -> "_Chains":
        return _Chains(*(x[keep] for x in self._fields()))

    def join(self, other: "_Chains") -> "_Chains":
        return _Chains(*(np.concatenate([x, y]) for x, y in zip(self._fields(), other._fields())))


def _allowed_regions(label_maps: np.ndarray, object_ids: list[int], margin: int, background_band: int
                     ) -> dict[int, np.ndarray]:
    """Per label: (T, H, W) bool where its points may be. An object's pixels widened by ``margin`` (masks are not
    exact at the edges); for the background, pixels at least ``background_band`` from every object."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    band = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * background_band + 1, 2 * background_band + 1))
    regions = {0: np.stack([cv2.dilate((m != 0).astype(np.uint8), band) == 0 for m in label_maps])}
    for label in object_ids:
        stack = (label_maps == label).astype(np.uint8)
        regions[label] = np.stack([cv2.dilate(m, kernel) if margin else m for m in stack]).astype(bool)
    return regions


def _in_regions(regions: dict[int, np.ndarray] | None, t: int, points: np.ndarray, labels: np.ndarray
                ) -> np.ndarray:
    ok = np.ones(len(points), dtype=bool)
    if regions is None:
        return ok
    for label in np.unique(labels):
        chosen = labels == label
        ok[chosen] = lookup(regions[int(label)][t], points[chosen])
    return ok


def _looks_alike(a: np.ndarray, b: np.ndarray, min_ncc: float, flat_passes: bool = True) -> np.ndarray:
    """(M,) bool: patches (M, P) correlate by at least ``min_ncc``; patches too flat to tell pass or fail as asked."""
    flat = np.minimum(a.std(axis=1), b.std(axis=1)) < MIN_PATCH_CONTRAST
    return np.where(flat, flat_passes, ncc(a, b) >= min_ncc)


def _far_from(points: np.ndarray, others: np.ndarray, radius: float) -> np.ndarray:
    """(M,) bool: farther than ``radius`` from every one of ``others`` (K, 2), so a re-acquired point that landed on
    a track already there is not kept twice."""
    if len(others) == 0 or len(points) == 0:
        return np.ones(len(points), dtype=bool)
    distance, _ = cKDTree(others).query(points, k=1, distance_upper_bound=radius)
    return ~np.isfinite(distance)


def _step(chains: _Chains, t: int, target: int, flows: dict, grays: np.ndarray,
          regions: dict[int, np.ndarray] | None, config: TracksConfig) -> tuple[_Chains, np.ndarray]:
    """Advance all chains from frame ``t`` to ``target`` (t +- 1); returns the survivors and their visibility there."""
    forward, backward = flows[(t, target)], flows[(target, t)]
    seen = chains.lost == 0
    moved, ok = flow_step(chains.position[seen], forward, backward, config.fb_threshold, config.fb_relative)
    ok &= _looks_alike(patches(grays[t], chains.position[seen]), patches(grays[target], moved), config.min_ncc)
    ok &= _in_regions(regions, target, moved, chains.label[seen])

    position = chains.position.copy()
    position[seen] = moved
    visible = np.zeros(len(chains.index), dtype=bool)
    visible[seen] = ok
    seen_frame, seen_position = chains.seen_frame.copy(), chains.seen_position.copy()
    seen_frame[seen], seen_position[seen] = t, chains.position[seen]
    predictable = np.zeros(len(chains.index), dtype=bool)
    if config.reacquire_frames > 0:
        _reacquire(chains, position, visible, predictable, seen_frame, seen_position, target, grays, regions,
                   config)

    lost = np.where(visible, 0, chains.lost + 1)
    alive = visible | (predictable & (lost <= config.reacquire_frames))
    seen_frame[visible], seen_position[visible] = target, position[visible]
    advanced = _Chains(chains.index, position, chains.label, lost, seen_frame, seen_position)
    return advanced.take(alive), visible[alive]


def _reacquire(chains: _Chains, position: np.ndarray, visible: np.ndarray, predictable: np.ndarray,
               seen_frame: np.ndarray, seen_position: np.ndarray, target: int, grays: np.ndarray,
               regions: dict[int, np.ndarray] | None, config: TracksConfig) -> None:
    """Carry the points not visible in ``target`` with their neighbours' motion and re-acquire those that match
    their last-seen look again (Lucas-Kanade from the last-seen frame, then patch correlation). Updates
    ``position``, ``visible`` and ``predictable`` (still worth following) in place."""
    height, width = grays.shape[1:]
    anchors = np.flatnonzero(visible)
    for label in np.unique(chains.label[~visible]):
        these = np.flatnonzero(~visible & (chains.label == label))
        same = anchors[chains.label[anchors] == label]
        predicted, known = predict_from_neighbours(chains.position[these], chains.position[same], position[same])
        known &= inside_image(predicted, width, height, EDGE_MARGIN)
        position[these], predictable[these] = predicted, known
        candidates = these[known & _in_regions(regions, target, predicted, chains.label[these])]
        for frame in np.unique(seen_frame[candidates]):
            group = candidates[seen_frame[candidates] == frame]
            last_look = patches(grays[frame], seen_position[group])
            refined, _ = refine_lk(grays[frame], grays[target], seen_position[group], position[group])
            usable = inside_image(refined, width, height, EDGE_MARGIN)
            usable &= _in_regions(regions, target, refined, chains.label[group])
            # Keep whichever of the prediction and its refinement matches the last-seen look better.
            predicted_score = ncc(last_look, patches(grays[target], position[group]))
            refined_score = np.where(usable, ncc(last_look, patches(grays[target], refined)), -1.0)
            better = refined_score > predicted_score
            chosen = np.where(better[:, None], refined, position[group])
            ok = _looks_alike(last_look, patches(grays[target], chosen), config.min_ncc, flat_passes=False)
            ok &= _far_from(chosen, position[visible & (chains.label == label)], config.min_spacing / 2)
            position[group[ok]] = chosen[ok]
            visible[group[ok]] = True


def track_with_flow(images: np.ndarray, label_maps: np.ndarray | None, object_ids: list[int],
                    config: TracksConfig) -> PointTracks:
    """Weight-free point tracks of a clip.

    Args:
        images: (T, H, W, 3) uint8 RGB frames.
        label_maps: (T, H, W) int object ids per pixel (0 background), or None (everything is background).
        object_ids: the ids that ``label_maps`` may contain.
        config: tracking settings.

    Returns:
        :class:`PointTracks` with ``method="flow"``; positions where a track is not visible hold its predicted
        position while lost, otherwise its nearest visible position in time (always finite).
    """
    num_frames = len(images)
    grays = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images])
    flows = {}
    for t in range(num_frames - 1):
        flows[(t, t + 1)] = dense_flow(grays[t], grays[t + 1], config.flow_preset, config.flow_finest_scale)
        flows[(t + 1, t)] = dense_flow(grays[t + 1], grays[t], config.flow_preset, config.flow_finest_scale)
    regions = None if label_maps is None else _allowed_regions(label_maps, object_ids, config.mask_margin,
                                                                     config.background_band)
    query_frames = sorted(set(range(0, num_frames, config.query_every)) | {num_frames - 1})

    labels, started = [], []
    empty = _Chains.start(np.zeros(0, np.int64), np.zeros((0, 2), np.float32), np.zeros(0, np.int32), 0)
    chains, total = empty, 0
    track_xy = np.zeros((0, num_frames, 2), np.float32)
    track_vis = np.zeros((0, num_frames), bool)
    for t in range(num_frames):
        if t in query_frames:
            seen = chains.lost == 0
            points, point_labels = sample_queries(
                images[t], None if label_maps is None else label_maps[t], object_ids,
                chains.position[seen], chains.label[seen], config)
            count = len(points)
            new = _Chains.start(np.arange(total, total + count), points, point_labels, t)
            chains, total = chains.join(new), total + count
            track_xy = np.concatenate([track_xy, np.full((count, num_frames, 2), np.nan, np.float32)])
            track_vis = np.concatenate([track_vis, np.zeros((count, num_frames), bool)])
            track_xy[new.index, t] = points
            track_vis[new.index, t] = True
            labels.append(point_labels)
            started.append(np.full(count, t))
        if t + 1 < num_frames:
            chains, visible = _step(chains, t, t + 1, flows, grays, regions, config)
            track_xy[chains.index, t + 1] = chains.position
            track_vis[chains.index, t + 1] = visible
    labels_all = np.concatenate(labels)
    started_all = np.concatenate(started)

    chains = empty
    for t in range(num_frames - 1, 0, -1):
        new_index = np.flatnonzero(started_all == t)
        if len(new_index):
            chains = chains.join(_Chains.start(new_index, track_xy[new_index, t].copy(), labels_all[new_index], t))
        chains, visible = _step(chains, t, t - 1, flows, grays, regions, config)
        track_xy[chains.index, t - 1] = chains.position
        track_vis[chains.index, t - 1] = visible

    keep = track_vis.sum(axis=1) >= min(config.min_visible_frames, num_frames)
    track_xy, track_vis = _fill_gaps(track_xy[keep]), track_vis[keep]
    return PointTracks(track_xy, track_vis, labels_all[keep], method="flow")


def _fill_gaps(positions: np.ndarray) -> np.ndarray:
    """Replace unknown (NaN) positions by the nearest known position in time; (N, T, 2) -> (N, T, 2)."""
    known = np.isfinite(positions[..., 0])
    num_frames = positions.shape[1]
    frames = np.arange(num_frames)
    last = np.maximum.accumulate(np.where(known, frames, -1), axis=1)
    next_ = np.flip(np.minimum.accumulate(np.flip(np.where(known, frames, num_frames), axis=1), axis=1), axis=1)
    use_last = (last >= 0) & ((next_ >= num_frames) | (frames - last <= next_ - frames))
    source = np.where(use_last, last, next_)
    rows = np.arange(len(positions))[:, None]
    return positions[rows, np.clip(source, 0, num_frames - 1)]
