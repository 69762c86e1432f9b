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
from scene4d.holdout import fitted_frames


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
        """Collect one object's observations from the stage artefacts, checking they agree.

        ``holdout_every``: frames :func:`scene4d.holdout.hidden_frames` names are kept out of the training frames.
        """
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
        train = np.asarray(fitted_frames(frames.num_frames, holdout_every), dtype=np.int64)
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

    def cropped(self, boxes: list[tuple[int, int, int, int]]) -> "ObjectObservations":
        """The same observations seen through one window per frame, all of one size.

        Pixels outside the windows are dropped, each frame's principal point and tracks are shifted by its
        window's corner, so a model renders through the cropped cameras exactly as it would through the
        full ones, restricted to the window.

        Args:
            boxes: T windows ``(top, bottom, left, right)`` of one size, inside the image (:func:`object_windows`).
        """
        if len(boxes) != self.num_frames or len({(b - t, r - l) for t, b, l, r in boxes}) != 1:
            raise ValueError(f"cropped: expected {self.num_frames} windows of one size, got {boxes}")
        corners = torch.tensor([[left, top] for top, _, left, _ in boxes], dtype=self.Ks.dtype)  # (T, 2)
        crop = lambda images: torch.stack([image[t:b, l:r] for image, (t, b, l, r) in zip(images, boxes)])  # noqa: E731
        Ks = self.Ks.clone()
        Ks[:, :2, 2] -= corners
        return ObjectObservations(
            images=crop(self.images), masks=crop(self.masks), valid=crop(self.valid), depth=crop(self.depth),
            depth_weights=crop(self.depth_weights), viewmats=self.viewmats, Ks=Ks,
            tracks=self.tracks - corners[None].to(self.tracks.dtype), track_visibility=self.track_visibility,
            train_frames=self.train_frames)


def object_windows(shapes: torch.Tensor, margin: int, relative_margin: float = 0.0
                   ) -> list[tuple[int, int, int, int]]:
    """Per frame ``(top, bottom, left, right)``: windows of one size (the largest extent of the shape over the
    frames plus a margin on each side) centred on each frame's shape and kept inside the image.

    Args:
        shapes: (T, H, W) bool silhouettes.
        margin: pixels added on each side.
        relative_margin: added on each side as a fraction of the largest extent.
    """
    num_frames, height, width = shapes.shape
    spans = []
    for shape in shapes:
        rows, cols = torch.nonzero(shape.any(1))[:, 0], torch.nonzero(shape.any(0))[:, 0]
        spans.append(None if rows.numel() == 0 else (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1))
    found = [span for span in spans if span is not None]
    if not found:
        return [(0, height, 0, width)] * num_frames
    extent_h, extent_w = max(b - t for t, b, _, _ in found), max(r - l for _, _, l, r in found)
    box_h = min(extent_h + 2 * (margin + round(relative_margin * extent_h)), height)
    box_w = min(extent_w + 2 * (margin + round(relative_margin * extent_w)), width)
    boxes, last = [], found[0]
    for span in spans:
        last = span or last  # a frame without the object keeps the previous frame's window
        top = min(max((last[0] + last[1] - box_h) // 2, 0), height - box_h)
        left = min(max((last[2] + last[3] - box_w) // 2, 0), width - box_w)
        boxes.append((top, top + box_h, left, left + box_w))
    return boxes
