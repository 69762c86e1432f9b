"""Synthetic clips with known object masks: textured shapes moving over a textured, panning background."""

from __future__ import annotations

import cv2
import numpy as np
import pytest


def _texture(rng: np.random.Generator, height: int, width: int, blur: float) -> np.ndarray:
    noise = rng.uniform(0, 255, (height, width, 3)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), blur)
    noise = (noise - noise.min()) / (noise.max() - noise.min() + 1e-6) * 255
    return noise.astype(np.uint8)


def make_clip(num_frames: int, size: tuple[int, int], pan: tuple[float, float],
              shapes: list[tuple[str, tuple[float, float], tuple[float, float], int]], seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """Frames and label maps.

    Args:
        num_frames: T.
        size: ``(width, height)``.
        pan: background shift per frame ``(dx, dy)`` in pixels (the camera's motion).
        shapes: ``(kind, start_xy, velocity_xy, radius)`` with kind ``disc`` or ``square``; label k + 1.
        seed: texture seed.

    Returns:
        ``(images, labels)``: (T, H, W, 3) uint8 and (T, H, W) int32.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    margin = int(abs(pan[0]) * num_frames + abs(pan[1]) * num_frames) + 8
    background = _texture(rng, height + 2 * margin, width + 2 * margin, 2.0)
    textures = [_texture(rng, height, width, 1.5) for _ in shapes]
    images, labels = [], []
    for t in range(num_frames):
        x0, y0 = margin + round(pan[0] * t), margin + round(pan[1] * t)
        image = background[y0:y0 + height, x0:x0 + width].copy()
        label = np.zeros((height, width), np.int32)
        for k, (kind, start, velocity, radius) in enumerate(shapes):
            cx, cy = start[0] + velocity[0] * t, start[1] + velocity[1] * t
            mask = np.zeros((height, width), np.uint8)
            if kind == "disc":
                cv2.circle(mask, (round(cx), round(cy)), radius, 1, -1)
            else:
                cv2.rectangle(mask, (round(cx - radius), round(cy - radius)),
                              (round(cx + radius), round(cy + radius)), 1, -1)
            shifted = np.roll(textures[k], (round(cy), round(cx)), axis=(0, 1))
            image[mask > 0] = shifted[mask > 0]
            label[mask > 0] = k + 1
        images.append(image)
        labels.append(label)
    return np.stack(images), np.stack(labels)


@pytest.fixture
def synthetic_clip():
    return make_clip
