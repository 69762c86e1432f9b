"""Scene prior for cameras that do not translate: a ground plane below the horizon and a backdrop above it.

Assumptions, in the first frame's camera:

- the camera has no roll and stands ``camera_height`` metres above a flat, horizontal ground;
- the horizon (the image of the ground's vanishing line) is the row ``horizon_row``; the camera's pitch follows
  from it: ``tan(pitch) = (cy - horizon_row) / fy`` (looking down when the horizon is above the principal point);
- everything that is not ground is a backdrop at ``backdrop_distance`` metres from the camera centre, which also
  caps the ground's depth near the horizon.

Later frames see the same ground through their own rotation; camera translation is ignored (the prior serves
cameras that rotate or stay fixed). Depths are camera-space z in metres under the assumed camera height.
"""

from __future__ import annotations

import numpy as np


def ground_normal(K: np.ndarray, viewmat: np.ndarray, horizon_row: float) -> np.ndarray:
    """World-space unit "down" vector of the ground plane implied by a horizon row in one camera.

    Args:
        K: (3, 3) intrinsics of that camera.
        viewmat: (4, 4) its world-to-camera matrix.
        horizon_row: continuous y coordinate of the horizon in that image.

    Returns:
        (3,) unit normal pointing from the camera towards the ground.
    """
    slope = (horizon_row - K[1, 2]) / K[1, 1]
    down_in_camera = np.array([0.0, 1.0, -slope]) / np.sqrt(1.0 + slope ** 2)
    return viewmat[:3, :3].T @ down_in_camera


def scene_prior_depth(Ks: np.ndarray, viewmats: np.ndarray, width: int, height: int, horizon_row: float,
                      camera_height: float, backdrop_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Depth of the ground plane (capped by the backdrop) and of the backdrop, for every frame.

    Args:
        Ks: (T, 3, 3) intrinsics.
        viewmats: (T, 4, 4) world-to-camera matrices (only their rotations are used); the ground is defined in
            the first one.
        width, height: image size.
        horizon_row: horizon's continuous y coordinate in the first frame.
        camera_height: height of the camera above the ground (metres).
        backdrop_distance: distance of the backdrop from each camera centre (metres).

    Returns:
        ``(depth, on_ground)``: (T, H, W) float32 camera-space z and (T, H, W) bool, True where the ground is
        nearer than the backdrop.
    """
    normal = ground_normal(Ks[0], viewmats[0], horizon_row)
    xs = np.arange(width) + 0.5
    ys = np.arange(height) + 0.5
    pixels = np.stack([*np.meshgrid(xs, ys), np.ones((height, width))], axis=-1)  # (H, W, 3)
    depth = np.empty((len(Ks), height, width), np.float32)
    on_ground = np.empty((len(Ks), height, width), bool)
    for t, (K, viewmat) in enumerate(zip(Ks, viewmats)):
        rays = pixels @ np.linalg.inv(K).T  # camera rays with z = 1, so a ray's length scale is its depth
        towards_ground = rays @ viewmat[:3, :3] @ normal  # normal . (R^T ray)
        with np.errstate(divide="ignore", invalid="ignore"):
            ground = np.where(towards_ground > 1e-9, camera_height / towards_ground, np.inf)
        backdrop = backdrop_distance / np.linalg.norm(rays, axis=-1)
        on_ground[t] = (ground > 0) & (ground < backdrop)
        depth[t] = np.where(on_ground[t], ground, backdrop)
    return depth, on_ground


def fit_horizon(Ks: np.ndarray, viewmats: np.ndarray, contacts: np.ndarray, assumed_row: float,
                camera_height: float, max_depth: float) -> float:
    """The assumed horizon row, raised just enough that every ground contact lies on the ground within ``max_depth``.

    Args:
        Ks: (T, 3, 3) intrinsics.
        viewmats: (T, 4, 4) world-to-camera matrices.
        contacts: (M, 3) ``(frame, x, y)`` pixel coordinates of objects' ground contacts (M may be 0).
        assumed_row: the horizon row in the first frame that the prior assumes.
        camera_height: metres.
        max_depth: farthest acceptable contact depth, metres.

    Returns:
        Horizon row (continuous y in the first frame); may lie above the image for a camera looking down.
    """
    if len(contacts) == 0:
        return assumed_row
    frames = contacts[:, 0].astype(int)
    pixels = np.concatenate([contacts[:, 1:], np.ones((len(contacts), 1))], axis=1)
    rays = np.einsum("mij,mj->mi", np.linalg.inv(Ks[frames]), pixels)
    world_rays = np.einsum("mji,mj->mi", viewmats[frames, :3, :3], rays)

    def fits(row: float) -> bool:
        towards_ground = world_rays @ ground_normal(Ks[0], viewmats[0], row)
        return bool(np.all(towards_ground * max_depth >= camera_height))

    if fits(assumed_row):
        return assumed_row
    high, low = Ks[0, 1, 2] - 20.0 * Ks[0, 1, 1], assumed_row  # ~87 degrees down ... the assumed row
    if not fits(high):
        return assumed_row
    for _ in range(50):
        middle = 0.5 * (high + low)
        high, low = (middle, low) if fits(middle) else (high, middle)
    return high
