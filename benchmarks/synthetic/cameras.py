"""Pinhole cameras for synthetic scenes: intrinsics from a field of view, look-at extrinsics, orbit trajectories.

World frame: z up, the ground is ``z = 0``. Cameras follow ``scene4d.conventions``: world-to-camera 4x4 matrices in
OpenCV axes (x right, y down, z forward), K in pixels with pixel centres at +0.5.
"""

from __future__ import annotations

import numpy as np

WORLD_UP = np.array([0.0, 0.0, 1.0])


def intrinsics(width: int, height: int, fov_x_degrees: float) -> np.ndarray:
    """(3, 3) K with square pixels and the principal point at the image centre ``(W / 2, H / 2)``."""
    focal = 0.5 * width / np.tan(np.radians(fov_x_degrees) / 2)
    return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(4, 4) world-to-camera matrix of a camera at ``eye`` (3,) looking at ``target`` (3,), world z up."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, WORLD_UP)
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    camtoworld = np.eye(4)
    camtoworld[:3, :3] = np.stack([right, down, forward], axis=1)
    camtoworld[:3, 3] = eye
    return np.linalg.inv(camtoworld)


def orbit(target: np.ndarray, radius: float, height: float, azimuths_degrees: np.ndarray) -> np.ndarray:
    """(T, 4, 4) world-to-camera matrices on a horizontal circle around ``target``, all looking at it.

    Azimuth 0 puts the camera on the -y side of the target looking along +y; positive azimuths move it towards +x.
    """
    angles = np.radians(azimuths_degrees)
    eyes = np.stack([target[0] + radius * np.sin(angles), target[1] - radius * np.cos(angles),
                     np.full_like(angles, height)], axis=1)
    return np.stack([look_at(eye, target) for eye in eyes])
