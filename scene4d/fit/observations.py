"""What one object's fit looks at, as tensors: frames, its masks, pixels to ignore, depth, cameras, tracks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from scene4d.contracts.cameras import Cameras
from scene4d.contracts.depth import DepthMaps
from scene4d.contracts.frames import Frames
from scene4d.contracts.masks import ObjectMasks
from scene4d.contracts.tracks import PointTracks
from scene4d.errors import InputError


@dataclass
class ObjectObservations:
    """Observations of one object over T frames (float32 tensors).

    Attributes:
        images: (T, H, W, 3) in [0, 1].
        masks: (T, H, W, 1) the object's mask in {0, 1}.
        valid: (T, H, W, 1) 0 where another object covers the pixel (this object may be hidden there).
        depth: (T, H, W, 1); depth_weights: (T, H, W, 1) depth confidence inside the mask.
        viewmats: (T, 4, 4); Ks: (T, 3, 3).
        tracks: (P, T, 2) pixel positions of the object's point tracks; track_visibility: (P, T) bool.
        train_frames: (F,) long indices of frames the fit may look at.
    """

    images: torch.Tensor
    masks: torch.Tensor
    valid: torch.Tensor
    depth: torch.Tensor
    depth_weights: torch.Tensor
    viewmats: torch.Tensor
    Ks: torch.Tensor
    tracks: torch.Tensor
    track_visibility: torch.Tensor
    train_frames: torch.Tensor

    @property
    def num_frames(self) -> int:
        return self.images.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return self.images.shape[2], self.images.shape[1]

    @classmethod
    def gather(cls, object_id: int, frames: Frames, masks: ObjectMasks, depth: DepthMaps, cameras: Cameras,
               tracks: PointTracks | None, holdout_every: int = 0) -> "ObjectObservations":
        """Collect one object's observations from the stage artefacts, checking they agree."""
        size = (frames.width, frames.height)
        masks.validate(frames.num_frames, size)
        depth.validate(frames.num_frames, size)
        cameras.validate(frames.num_frames, size)
        if object_id not in masks.object_ids:
            raise InputError(f"fit: no object {object_id} in the masks (ids: {masks.object_ids})")
        own = masks.of(object_id)
        others = np.zeros_like(own)
        for other_id in masks.object_ids:
            if other_id != object_id:
                others |= masks.of(other_id)
        frames_all = np.arange(frames.num_frames)
        train = frames_all if holdout_every <= 0 else frames_all[frames_all % holdout_every != holdout_every - 1]
        train = train[own[train].reshape(len(train), -1).any(axis=1)]
        if len(train) == 0:
            raise InputError(f"fit: object {object_id} is not visible in any training frame")
        if tracks is not None:
            tracks.validate(frames.num_frames)
            own_tracks = tracks.of(object_id)
            track_xy, track_vis = own_tracks.tracks, own_tracks.visibility
        else:
            track_xy = np.zeros((0, frames.num_frames, 2), np.float32)
            track_vis = np.zeros((0, frames.num_frames), bool)
        as_tensor = lambda a: torch.as_tensor(np.ascontiguousarray(a))  # noqa: E731
        return cls(
            images=as_tensor(frames.images).float() / 255.0,
            masks=as_tensor(own[..., None]).float(),
            valid=1.0 - as_tensor((others & ~own)[..., None]).float(),
            depth=as_tensor(depth.depth[..., None]).float(),
            depth_weights=as_tensor((depth.confidence * own)[..., None]).float(),
            viewmats=as_tensor(cameras.viewmats).float(),
            Ks=as_tensor(cameras.Ks).float(),
            tracks=as_tensor(track_xy).float(),
            track_visibility=as_tensor(track_vis),
            train_frames=as_tensor(train).long(),
        )
