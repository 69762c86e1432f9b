"""Initial 4D model of an object from its observations: lifted pixels, a mirrored back, a lifted trajectory."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from scene4d.conventions import backproject_depth, normalized_time
from scene4d.dynamic_object import Deformation, DynamicObject
from scene4d.fit.config import FitConfig
from scene4d.fit.observations import ObjectObservations
from scene4d.gaussians import Gaussians
from scene4d.motion.hexplane import HexPlaneDeformation
from scene4d.motion.skinning import ControlPointDeformation
from scene4d.motion.spline import num_knots_for
from scene4d.motion.trajectory import RigidTrajectory

HEXPLANE_BOX_MARGIN = 0.1
"""Padding of the hexplane's box on each side, as a fraction of the object's extent."""


@dataclass
class Initialisation:
    """The initial model and what the fit needs to know about it.

    Attributes:
        model: the object's initial 4D model.
        reference_frame: frame whose pixels built the canonical shape.
        extent: the object's size (robust diameter of its points), the unit of learning rates and penalties.
        track_anchors: (P, 3) canonical points the object's tracks were attached to.
        track_rows: (P,) long rows of ``observations.tracks`` the anchors belong to.
    """

    model: DynamicObject
    reference_frame: int
    extent: float
    track_anchors: torch.Tensor
    track_rows: torch.Tensor


def reference_frame(observations: ObjectObservations) -> int:
    """The training frame where the object's visible, unoccluded area is largest."""
    train = observations.train_frames
    areas = (observations.masks[train] * observations.valid[train]).flatten(1).sum(1)
    return int(train[torch.argmax(areas)])


def lift_masked_pixels(observations: ObjectObservations, frame: int, max_points: int,
                       generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """World points and colours of (a random subset of) the object's pixels in one frame.

    Returns:
        ``(points, colors)``: (P, 3) world positions and (P, 3) RGB in [0, 1].
    """
    camtoworld = torch.linalg.inv(observations.viewmats[frame])
    world = backproject_depth(observations.depth[frame, ..., 0], observations.Ks[frame], camtoworld)
    inside = observations.masks[frame, ..., 0] > 0.5
    points, colors = world[inside], observations.images[frame][inside]
    if points.shape[0] > max_points:
        keep = torch.randperm(points.shape[0], generator=generator)[:max_points]
        points, colors = points[keep], colors[keep]
    return points, colors


def mirror_behind(points: torch.Tensor, center: torch.Tensor, view_dir: torch.Tensor) -> torch.Tensor:
    """Reflect points across the plane through ``center`` perpendicular to the unit ``view_dir`` (P, 3) -> (P, 3)."""
    offsets = ((points - center) @ view_dir)[:, None]
    return points - 2.0 * offsets * view_dir


def farthest_point_sampling(points: torch.Tensor, count: int) -> torch.Tensor:
    """(count,) indices of a well-spread subset of ``points`` (N, 3), greedy farthest-point order."""
    count = min(count, points.shape[0])
    chosen = torch.zeros(count, dtype=torch.long)
    distance = torch.full((points.shape[0],), float("inf"), dtype=points.dtype)
    for i in range(1, count):
        distance = torch.minimum(distance, (points - points[chosen[i - 1]]).square().sum(-1))
        chosen[i] = torch.argmax(distance)
    return chosen


def object_centroids(observations: ObjectObservations) -> tuple[torch.Tensor, torch.Tensor]:
    """World centroid of the object's visible pixels in each training frame, lifted at their median depth.

    Returns:
        ``(frames, centroids)``: (F,) long frame indices where the object is visible, (F, 3) positions.
    """
    frames, centroids = [], []
    for t in observations.train_frames.tolist():
        inside = observations.masks[t, ..., 0] > 0.5
        if not inside.any():
            continue
        median_depth = observations.depth[t, ..., 0][inside].median()
        flat_depth = torch.where(inside, median_depth, torch.zeros_like(median_depth))
        world = backproject_depth(flat_depth, observations.Ks[t], torch.linalg.inv(observations.viewmats[t]))
        frames.append(t)
        centroids.append(world[inside].mean(0))
    return torch.tensor(frames, dtype=torch.long), torch.stack(centroids)


def initialise(observations: ObjectObservations, config: FitConfig) -> Initialisation:
    """Build the initial :class:`DynamicObject` (see module docstring) and anchor the object's tracks."""
    generator = torch.Generator().manual_seed(config.seed)
    ref = reference_frame(observations)
    points, colors = lift_masked_pixels(observations, ref, config.init_points, generator)
    if points.shape[0] < 8:
        raise ValueError(f"fit: only {points.shape[0]} object pixels in the reference frame {ref}")
    center = points.mean(0)
    camera_center = torch.linalg.inv(observations.viewmats[ref])[:3, 3]
    view_dir = torch.nn.functional.normalize(center - camera_center, dim=0)
    if config.mirror_back:
        # Put the mirror plane behind the visible surface by its depth spread, so the shell has volume.
        center_behind = center + view_dir * ((points - center) @ view_dir).abs().mean()
        points = torch.cat([points, mirror_behind(points, center_behind, view_dir)])
        colors = torch.cat([colors, colors])
    extent = float(torch.quantile(torch.linalg.norm(points - center, dim=1), 0.95)) * 2.0
    canonical = points - center
    gaussians = Gaussians.from_points(canonical, colors, sh_degree=config.sh_degree, opacity=config.init_opacity)

    deformation = build_deformation(config, canonical, extent, observations.num_frames)

    frames, centroids = object_centroids(observations)
    # Shift the lifted centroids so that the reference frame lands exactly on the canonical centre.
    ref_centroid = centroids[(frames == ref).nonzero()[0, 0]]
    times = normalized_time(frames, observations.num_frames)
    num_knots = num_knots_for(observations.num_frames, config.knots_per_frame)
    trajectory = RigidTrajectory.from_positions(times, centroids - ref_centroid + center, num_knots)

    anchors, rows = _anchor_tracks(observations, ref, center)
    return Initialisation(DynamicObject(gaussians, deformation, trajectory), ref, extent, anchors, rows)


def build_deformation(config: FitConfig, canonical: torch.Tensor, extent: float, num_frames: int) -> Deformation:
    """The identity deformation of ``config.deformation``'s kind around the canonical points (P, 3)."""
    if config.deformation == "hexplane":
        # The box is padded so that Gaussians that grow or move a little in the joint stage stay inside it.
        margin = HEXPLANE_BOX_MARGIN * extent
        bounds = torch.stack([canonical.min(0).values - margin, canonical.max(0).values + margin])
        time_resolution = num_knots_for(num_frames, config.hexplane_times_per_frame, minimum=2)
        return HexPlaneDeformation(bounds, config.hexplane_resolutions, time_resolution, config.hexplane_channels,
                                   config.hexplane_width, seed=config.seed)
    control_points = canonical[farthest_point_sampling(canonical, config.control_points)]
    spacing = extent / max(config.control_points, 1) ** (1.0 / 3.0)
    return ControlPointDeformation(control_points, num_knots_for(num_frames, config.knots_per_frame), radius=spacing,
                                   neighbours=config.skinning_neighbours)


def _anchor_tracks(observations: ObjectObservations, ref: int, center: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Lift the tracks visible in the reference frame to canonical points (depth at their pixel)."""
    visible = observations.track_visibility[:, ref]
    rows = visible.nonzero()[:, 0]
    if rows.numel() == 0:
        return torch.zeros(0, 3), rows
    height, width = observations.images.shape[1:3]
    xy = observations.tracks[rows, ref]
    cols = (xy[:, 0] - 0.5).round().long().clamp(0, width - 1)
    lines = (xy[:, 1] - 0.5).round().long().clamp(0, height - 1)
    depth = observations.depth[ref, lines, cols, 0]
    K = observations.Ks[ref]
    cam = torch.stack([(xy[:, 0] - K[0, 2]) / K[0, 0] * depth, (xy[:, 1] - K[1, 2]) / K[1, 1] * depth, depth], dim=1)
    camtoworld = torch.linalg.inv(observations.viewmats[ref])
    world = cam @ camtoworld[:3, :3].T + camtoworld[:3, 3]
    return world - center, rows
