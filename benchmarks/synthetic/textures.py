"""Textures from scikit-image's bundled sample photographs, and bilinear lookup with wrap-around."""

from __future__ import annotations

import numpy as np
from skimage import data
from skimage.transform import resize

# Sample images that ship inside the scikit-image wheel (no download).
OBJECT_TEXTURES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
GROUND_TEXTURES = ("grass", "gravel", "brick")
BACKDROP_TEXTURES = ("rocket", "coffee", "chelsea", "astronaut", "brick")
TEXTURE_SIZE = 256


def load_texture(name: str, tint: np.ndarray | None = None) -> np.ndarray:
    """A scikit-image sample photograph as a (256, 256, 3) float32 texture in [0, 1].

    Args:
        name: attribute of ``skimage.data`` (e.g. ``astronaut``).
        tint: optional (3,) RGB multiplier in [0, 1], to colour greyscale images.
    """
    image = getattr(data, name)()
    image = image.astype(np.float32) / 255.0
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = resize(image[..., :3], (TEXTURE_SIZE, TEXTURE_SIZE), anti_aliasing=True).astype(np.float32)
    if tint is not None:
        image = image * np.asarray(tint, dtype=np.float32)
    return np.clip(image, 0.0, 1.0)


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup with wrap-around.

    Args:
        texture: (h, w, 3).
        uv: (N, 2) coordinates; ``(0, 0)`` is the top-left corner of the texture, ``(1, 1)`` the bottom-right,
            and the texture repeats outside [0, 1).

    Returns:
        (N, 3) float32.
    """
    height, width = texture.shape[:2]
    x = np.mod(uv[:, 0], 1.0) * width - 0.5
    y = np.mod(uv[:, 1], 1.0) * height - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    x1, y1 = (x0 + 1) % width, (y0 + 1) % height
    x0, y0 = x0 % width, y0 % height
    top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
    bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)
