"""Synthetic clips with known cameras: textured planar quads rendered exactly by homographies."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from scene4d.contracts.frames import Frames


def texture(size: tuple[int, int], seed: int, num_shapes: int = 300) -> np.ndarray:
    """(H, W, 3) uint8 image of random filled circles and rectangles on smooth noise (rich in SIFT blobs)."""
    rng = np.random.default_rng(seed)
    height, width = size
    noise = rng.uniform(0, 255, (height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
    image = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(num_shapes):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(3, max(4, min(width, height) // 12)))
        if rng.random() < 0.5:
            cv2.circle(image, (x, y), r, colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(image, (x - r, y - r // 2), (x + r, y + r // 2), colour, -1)
    return image


def look_at(centre: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, -1.0, 0.0])) -> np.ndarray:
    """(4, 4) OpenCV world-to-camera matrix of a camera at ``centre`` looking at ``target`` (y down)."""
    forward = (target - centre) / np.linalg.norm(target - centre)
    right = np.cross(-up, forward)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    viewmat = np.eye(4)
    viewmat[:3, :3] = rotation
    viewmat[:3, 3] = -rotation @ centre
    return viewmat


def quad(centre, right, down, tex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A textured rectangle: corners ``centre -/+ right -/+ down`` (top-left, top-right, bottom-right, bottom-left)."""
    c, r, d = (np.asarray(v, dtype=float) for v in (centre, right, down))
    return tex, np.stack([c - r - d, c + r - d, c + r + d, c - r + d])


def render(quads: list, K: np.ndarray, viewmat: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 image: quads drawn far to near, each warped exactly by its plane's homography.

    Quads must lie entirely in front of the camera.
    """
    image = np.zeros((height, width, 3), np.uint8)
    depth = [float((viewmat[:3, :3] @ corners.mean(0) + viewmat[:3, 3])[2]) for _, corners in quads]
    for index in np.argsort(depth)[::-1]:
        tex, corners = quads[index]
        cam = corners @ viewmat[:3, :3].T + viewmat[:3, 3]
        assert (cam[:, 2] > 0).all(), "quad behind the camera"
        pixels = cam @ K.T
        pixels = pixels[:, :2] / pixels[:, 2:]
        th, tw = tex.shape[:2]
        # cv2 indexes pixel centres at integers; scene4d's continuous coordinates put them at +0.5.
        source = np.array([[0, 0], [tw, 0], [tw, th], [0, th]], np.float32) - 0.5
        homography = cv2.getPerspectiveTransform(source, (pixels - 0.5).astype(np.float32))
        warped = cv2.warpPerspective(tex, homography, (width, height), flags=cv2.INTER_LINEAR)
        cover = cv2.warpPerspective(np.full((th, tw), 255, np.uint8), homography, (width, height)) > 127
        image[cover] = warped[cover]
    return image


def frames_of(images: list[np.ndarray]) -> Frames:
    stack = np.stack(images)
    return Frames(images=stack, timestamps=np.arange(len(stack)) / 30.0, source="synthetic",
                  source_size=(stack.shape[2], stack.shape[1]))


def box_scene(seed: int = 0) -> list:
    """A back wall, a floor and two boxes' visible faces, around the point (0, 0, 6)."""
    t = [texture((256, 256), seed + k) for k in range(8)]
    return [
        quad([0, -0.5, 9], [7, 0, 0], [0, 4, 0], t[0]),          # back wall
        quad([0, 3.5, 5.5], [7, 0, 0], [0, 0, 3.5], t[1]),        # floor (y down is towards the floor)
        quad([-1.2, 2.5, 4.5], [0.8, 0, 0], [0, 1.0, 0], t[2]),   # box A front
        quad([-2.0, 2.5, 5.3], [0, 0, 0.8], [0, 1.0, 0], t[3]),   # box A side
        quad([1.5, 1.8, 6.0], [1.0, 0, 0], [0, 1.7, 0], t[4]),    # box B front
        quad([2.5, 1.8, 6.8], [0, 0, 0.8], [0, 1.7, 0], t[5]),    # box B side
        quad([0.2, 0.2, 7.0], [0.6, 0, 0], [0, 0.6, 0], t[6]),    # a poster in front of the wall
    ]


@pytest.fixture
def scenes():
    """This module's helpers (a conftest cannot be imported by tests under ``--import-mode=importlib``)."""
    return sys.modules[__name__]
