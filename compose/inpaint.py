"""What lies behind the objects: each frame's object regions filled with background colour and depth.

The regions to fill ("holes") are the union of the object masks, dilated a little so the object's blurred
silhouette and its mask's errors stay out of the background. They are filled weight-free with OpenCV's
inpainting (Telea's fast marching method, or Navier-Stokes). With a fixed camera every frame sees the same
pixels, so a hole pixel that some other frame shows uncovered takes the median of those observations (a clean
plate) and only pixels no frame ever shows are inpainted, once, identically for every frame.

The fill is only a prior: :mod:`compose.background` fits it with a low weight, so real observations from other
viewpoints win wherever they exist. A learned colour inpainter (:mod:`compose.inpaint_diffusion`, or any callable
``(image (H, W, 3) uint8, hole (H, W) bool) -> image``) replaces OpenCV for the colours; depth is always filled
with OpenCV.

Whatever lies behind an object is farther than the object: a hole pixel's depth is raised to at least
:func:`occluder_depth` (the object's depth plus its assumed thickness), so depth maps that put the background at
the object's own depth (weak depth cues behind a person) do not make the background swallow the object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from scene4d.contracts.masks import ObjectMasks
from scene4d.errors import InputError

Inpainter = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Colour inpainting: ``(image (H, W, 3) uint8, hole (H, W) bool) -> (H, W, 3) uint8``, unchanged outside ``hole``."""

_METHODS = {"telea": cv2.INPAINT_TELEA, "navier-stokes": cv2.INPAINT_NS}
# OpenCV's Telea on float images is unstable for small value ranges; depth is inpainted in this range instead.
_DEPTH_RANGE = 255.0


@dataclass
class InpaintConfig:
    """How object regions are filled with background."""

    method: str = "telea"
    """OpenCV inpainting algorithm: ``telea`` or ``navier-stokes``."""
    radius: float = 5.0
    """Neighbourhood radius in pixels that each filled pixel draws from."""
    dilation: int = 3
    """Pixels added around the union of object masks before filling (and before excluding from the loss)."""
    clean_plate: bool = True
    """With a fixed camera, fill each hole pixel from the frames where it is uncovered before inpainting."""


@dataclass
class BackgroundFill:
    """Background colour and depth for every pixel of every frame.

    Attributes:
        images: (T, H, W, 3) uint8, the input outside ``holes`` and the fill inside.
        depth: (T, H, W) float32, the input depth outside ``holes`` and the fill inside; meaningful where
            ``depth_known``.
        depth_known: (T, H, W) bool, input depth with confidence > 0 outside holes, or filled depth inside.
        holes: (T, H, W) bool, the dilated union of object masks.
    """

    images: np.ndarray
    depth: np.ndarray
    depth_known: np.ndarray
    holes: np.ndarray

    def __post_init__(self) -> None:
        shape = self.holes.shape
        if self.holes.ndim != 3 or self.holes.dtype != bool:
            raise InputError(f"fill: expected holes (T, H, W) bool, got {self.holes.shape} {self.holes.dtype}")
        if self.images.shape != (*shape, 3) or self.images.dtype != np.uint8:
            raise InputError(f"fill: expected images {(*shape, 3)} uint8, got {self.images.shape} {self.images.dtype}")
        if self.depth.shape != shape or self.depth_known.shape != shape:
            raise InputError(f"fill: expected depth and depth_known {shape}, got {self.depth.shape} and "
                             f"{self.depth_known.shape}")
        if np.any(self.depth[self.depth_known] <= 0):
            raise InputError("fill: non-positive depth where depth_known")


def dilate(masks: np.ndarray, pixels: int) -> np.ndarray:
    """Grow (T, H, W) bool masks by ``pixels`` with an elliptical structuring element of size ``2 p + 1``."""
    if masks.ndim != 3:
        raise InputError(f"dilate: expected masks (T, H, W), got {masks.shape}")
    if pixels < 0:
        raise InputError(f"dilate: pixels must be >= 0, got {pixels}")
    if pixels == 0:
        return masks.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return np.stack([cv2.dilate(m.astype(np.uint8), kernel) > 0 for m in masks])


def object_holes(masks: ObjectMasks | None, shape: tuple[int, int, int], dilation: int) -> np.ndarray:
    """(T, H, W) bool: the dilated union of every object's mask; all False for ``masks=None``.

    Args:
        masks: the objects' masks, or None when the clip has no objects.
        shape: ``(T, H, W)`` of the clip.
        dilation: pixels added around the union.
    """
    if masks is None:
        return np.zeros(shape, dtype=bool)
    if masks.masks.shape[1:] != tuple(shape):
        raise InputError(f"masks: expected (objects, {', '.join(map(str, shape))}), got {masks.masks.shape}")
    return dilate(masks.union(), dilation)


def occluder_depth(masks: np.ndarray, depth: np.ndarray, confidence: np.ndarray, focal: np.ndarray,
                   depth_ratio: float) -> np.ndarray:
    """The nearest depth the background may have behind each object pixel.

    For object ``o`` in frame ``t``: its depth ``z`` is the 90th percentile of the depth map over its mask
    (confident pixels), its half width ``r`` half the spread (5th to 95th percentile) of its mask's columns in
    pixels; the bound is ``z + depth_ratio * r * z / focal``, i.e. the object is assumed ``depth_ratio`` times
    as deep as it is wide. Where objects overlap the largest bound wins.

    Args:
        masks: (O, T, H, W) bool object masks.
        depth: (T, H, W) depth maps (object pixels carry the objects' depth); confidence: (T, H, W), 0 unknown.
        focal: (T,) horizontal focal length of each frame, pixels.
        depth_ratio: assumed depth of an object relative to its width (>= 0).

    Returns:
        (T, H, W) float32, 0 outside the objects and where an object has no confident depth.
    """
    if masks.ndim != 4 or masks.shape[1:] != depth.shape or confidence.shape != depth.shape:
        raise InputError(f"occluder depth: expected masks (O, {', '.join(map(str, depth.shape))}) and confidence "
                         f"{depth.shape}, got {masks.shape} and {confidence.shape}")
    if depth_ratio < 0:
        raise InputError(f"occluder depth: depth_ratio must be >= 0, got {depth_ratio}")
    bound = np.zeros(depth.shape, dtype=np.float32)
    for object_masks in masks:
        for t in np.flatnonzero(object_masks.reshape(object_masks.shape[0], -1).any(1)):
            mask = object_masks[t]
            known = mask & (confidence[t] > 0)
            if not known.any():
                continue
            z = float(np.percentile(depth[t][known], 90))
            low, high = np.percentile(np.nonzero(mask)[1], [5, 95])
            half_width = 0.5 * (high - low + 1.0)
            bound[t][mask] = np.maximum(bound[t][mask], z + depth_ratio * half_width * z / float(focal[t]))
    return bound


def _method(config: InpaintConfig) -> int:
    if config.method not in _METHODS:
        raise InputError(f"inpaint: method must be one of {sorted(_METHODS)}, got {config.method!r}")
    return _METHODS[config.method]


def inpaint_image(image: np.ndarray, hole: np.ndarray, config: InpaintConfig) -> np.ndarray:
    """Fill ``hole`` (H, W) bool of a (H, W, 3) uint8 image from its surroundings."""
    if not hole.any():
        return image.copy()
    return cv2.inpaint(np.ascontiguousarray(image), hole.astype(np.uint8), config.radius, _method(config))


def inpaint_depth(depth: np.ndarray, known: np.ndarray, config: InpaintConfig) -> tuple[np.ndarray, bool]:
    """Fill a (H, W) depth map where ``known`` (H, W) bool is False, in log depth.

    Returns:
        ``(filled, ok)``: (H, W) float32 depth, and False when no pixel was known (``filled`` is then ``depth``).
    """
    if known.all():
        return depth.astype(np.float32), True
    if not known.any():
        return depth.astype(np.float32), False
    log_depth = np.log(np.where(known, depth, 1.0))
    low, high = log_depth[known].min(), log_depth[known].max()
    span = max(high - low, 1e-6)
    scaled = ((log_depth - low) / span * _DEPTH_RANGE).astype(np.float32)
    filled = cv2.inpaint(scaled, (~known).astype(np.uint8), config.radius, _method(config))
    out = np.exp(filled.astype(np.float64) / _DEPTH_RANGE * span + low).astype(np.float32)
    return np.where(known, depth, out).astype(np.float32), True


def _clean_plate(images: np.ndarray, depth: np.ndarray, holes: np.ndarray, depth_valid: np.ndarray,
                 config: InpaintConfig, inpaint: Inpainter) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per-pixel median over the frames that show it, inpainted where no frame does (fixed camera)."""
    seen = ~holes
    ever_seen = seen.any(axis=0)
    # Pixels no frame shows get a placeholder column (no all-NaN medians); they are inpainted below.
    stack = np.where(seen[..., None] | ~ever_seen[..., None], images.astype(np.float32), np.nan)
    plate = np.clip(np.round(np.nanmedian(stack, axis=0)), 0, 255).astype(np.uint8)
    plate = inpaint(plate, ~ever_seen) if (~ever_seen).any() else plate
    depth_seen = seen & depth_valid
    any_depth = depth_seen.any(axis=0)
    depth_stack = np.where(depth_seen | ~any_depth, depth, np.nan)
    plate_depth, ok = inpaint_depth(np.nanmedian(depth_stack, axis=0), any_depth, config)
    return plate, plate_depth, ok


def fill_background(images: np.ndarray, holes: np.ndarray, depth: np.ndarray, confidence: np.ndarray,
                    fixed_camera: bool, config: InpaintConfig, inpainter: Inpainter | None = None,
                    min_depth: np.ndarray | None = None) -> BackgroundFill:
    """Fill every frame's holes with background colour and depth (see the module docstring).

    Args:
        images: (T, H, W, 3) uint8 frames.
        holes: (T, H, W) bool regions to fill (:func:`object_holes`).
        depth: (T, H, W) depth; confidence: (T, H, W) in [0, 1], 0 where the depth is unknown.
        fixed_camera: every frame has the same camera (enables the clean plate).
        config: algorithm, radius and clean-plate switch.
        inpainter: colour inpainting to use instead of OpenCV (e.g. a learned one), or None.
        min_depth: (T, H, W) nearest depth allowed for filled pixels (:func:`occluder_depth`), or None.

    Returns:
        :class:`BackgroundFill`; a frame with no confident background depth keeps its holes' depth unknown.
    """
    if images.ndim != 4 or images.shape[:3] != holes.shape or images.dtype != np.uint8:
        raise InputError(f"fill: expected images {(*holes.shape, 3)} uint8, got {images.shape} {images.dtype}")
    if depth.shape != holes.shape or confidence.shape != holes.shape:
        raise InputError(f"fill: expected depth and confidence {holes.shape}, got {depth.shape} and {confidence.shape}")
    if min_depth is not None and min_depth.shape != holes.shape:
        raise InputError(f"fill: expected min_depth {holes.shape}, got {min_depth.shape}")
    _method(config)  # reject an unknown method even when there is nothing to fill
    inpaint = inpainter or (lambda image, hole: inpaint_image(image, hole, config))
    depth_valid = confidence > 0
    filled_images = images.copy()
    filled_depth = depth.astype(np.float32).copy()
    depth_known = depth_valid & ~holes
    if fixed_camera and config.clean_plate and holes.any():
        plate, plate_depth, ok = _clean_plate(images, depth, holes, depth_valid, config, inpaint)
        filled_images[holes] = np.broadcast_to(plate, images.shape)[holes]
        if ok:
            filled_depth[holes] = np.broadcast_to(plate_depth, depth.shape)[holes]
            depth_known |= holes
        return BackgroundFill(filled_images, _at_least(filled_depth, min_depth, holes), depth_known, holes)
    for t in range(images.shape[0]):
        if not holes[t].any():
            continue
        filled_images[t] = inpaint(images[t], holes[t])
        frame_depth, ok = inpaint_depth(depth[t], depth_valid[t] & ~holes[t], config)
        if ok:
            filled_depth[t][holes[t]] = frame_depth[holes[t]]
            depth_known[t] |= holes[t]
    return BackgroundFill(filled_images, _at_least(filled_depth, min_depth, holes), depth_known, holes)


def _at_least(depth: np.ndarray, min_depth: np.ndarray | None, holes: np.ndarray) -> np.ndarray:
    if min_depth is None:
        return depth
    return np.where(holes, np.maximum(depth, min_depth), depth).astype(np.float32)
