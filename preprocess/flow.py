"""Dense optical flow (OpenCV DIS) with forward-backward consistency, shared by masks, tracks and cameras."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class FlowConfig:
    """Dense optical flow settings."""

    preset: str = "medium"
    """DIS preset: ultrafast, fast or medium (slower, more accurate)."""
    fb_threshold: float = 1.0
    """Forward-backward error (pixels) above which a flow vector is inconsistent (occluded or wrong)."""
    fb_relative: float = 0.05
    """Extra tolerance proportional to the flow magnitude (fraction of it)."""


_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def dense_flow(source: np.ndarray, target: np.ndarray, preset: str = "medium") -> np.ndarray:
    """Flow from ``source`` to ``target``: pixel ``(x, y)`` of source moves to ``(x, y) + flow[y, x]``.

    Args:
        source, target: (H, W, 3) uint8 RGB (or (H, W) gray) images of the same size.
        preset: DIS preset name.

    Returns:
        (H, W, 2) float32 flow in pixels.
    """
    if preset not in _DIS_PRESETS:
        raise ValueError(f"flow preset must be one of {sorted(_DIS_PRESETS)}, got {preset!r}")
    if source.shape[:2] != target.shape[:2]:
        raise ValueError(f"flow: images differ in size, {source.shape[:2]} vs {target.shape[:2]}")
    dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
    return dis.calc(_gray(source), _gray(target), None)


def warp(image: np.ndarray, flow_back: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Backward-warp ``image`` (at time t1) into time t0 with the flow from t0 to t1.

    Args:
        image: (H, W, ...) image at t1.
        flow_back: (H, W, 2) flow from t0 to t1 (where each t0 pixel lands in t1).
        interpolation: OpenCV interpolation flag.

    Returns:
        (H, W, ...) image resampled at t0's pixels; outside the frame it is 0.
    """
    height, width = flow_back.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, grid_x + flow_back[..., 0], grid_y + flow_back[..., 1], interpolation,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def forward_backward_error(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Distance between a pixel and where it lands after following the forward then the backward flow.

    Args:
        forward: (H, W, 2) flow t0 -> t1.
        backward: (H, W, 2) flow t1 -> t0.

    Returns:
        (H, W) float32 error in pixels (large where occluded or unreliable; inf where leaving the frame).
    """
    height, width = forward.shape[:2]
    back_at_target = warp(backward, forward)
    error = np.linalg.norm(forward + back_at_target, axis=-1)
    grid_x, grid_y = np.meshgrid(np.arange(width), np.arange(height))
    target_x, target_y = grid_x + forward[..., 0], grid_y + forward[..., 1]
    outside = (target_x < 0) | (target_x > width - 1) | (target_y < 0) | (target_y > height - 1)
    error[outside] = np.inf
    return error.astype(np.float32)


def consistent_flow(source: np.ndarray, target: np.ndarray, config: FlowConfig | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Forward flow and a mask of where it passes the forward-backward check.

    Returns:
        ``(flow, valid)``: (H, W, 2) float32 flow source -> target and (H, W) bool.
    """
    config = config or FlowConfig()
    forward = dense_flow(source, target, config.preset)
    backward = dense_flow(target, source, config.preset)
    error = forward_backward_error(forward, backward)
    tolerance = config.fb_threshold + config.fb_relative * np.linalg.norm(forward, axis=-1)
    return forward, error <= tolerance
