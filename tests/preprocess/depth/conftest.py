"""Ray-cast textured planes for the depth tests (known geometry, so known depth)."""

import cv2
import numpy as np
import pytest

WIDTH, HEIGHT = 240, 180


def _texture(size, seed):
    """A smooth random RGB texture, (size, size, 3) float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    out = np.zeros((size, size), np.float32)
    for sigma, amplitude in ((1.5, 0.4), (4.5, 0.6)):
        noise = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), sigma)
        out += amplitude * noise / noise.std()
    out = (out - out.min()) / (out.max() - out.min())
    return np.stack([out, np.roll(out, 5, 0), np.roll(out, 9, 1)], axis=-1)


def _render(K, viewmat, planes):
    """Ray-cast textured planes ``(normal, offset, texture, axes (2, 3), texels per metre, inside(X) or None)``.

    Returns the (H, W, 3) uint8 image and the (H, W) camera-space depth of the nearest plane.
    """
    xs, ys = np.meshgrid(np.arange(WIDTH) + 0.5, np.arange(HEIGHT) + 0.5)
    rays = np.stack([xs, ys, np.ones_like(xs)], -1) @ np.linalg.inv(K).T @ viewmat[:3, :3]  # world directions
    centre = -viewmat[:3, :3].T @ viewmat[:3, 3]
    nearest = np.full((HEIGHT, WIDTH), np.inf)
    image = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    for normal, offset, pattern, axes, density, inside in planes:
        with np.errstate(divide="ignore", invalid="ignore"):
            distance = (offset - normal @ centre) / (rays @ normal)
        points = centre + distance[..., None] * rays
        hit = np.isfinite(distance) & (distance > 0) & (distance < nearest)
        if inside is not None:
            hit &= inside(points)
        uv = (points @ axes.T * density) % pattern.shape[0]
        colour = cv2.remap(pattern, uv[..., 0].astype(np.float32), uv[..., 1].astype(np.float32),
                           cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        image[hit], nearest[hit] = colour[hit], distance[hit]
    return (image * 255).clip(0, 255).astype(np.uint8), nearest.astype(np.float32)  # rays have camera z = 1


@pytest.fixture(scope="session")
def texture():
    """``texture(size, seed)``: a smooth random RGB texture, (size, size, 3) float32 in [0, 1]."""
    return _texture


@pytest.fixture(scope="session")
def render():
    """``render(K, viewmat, planes)``: ray-cast textured planes into a WIDTH x HEIGHT image and its depth."""
    return _render
