"""Analytic surfaces with exact ray intersection, texture coordinates and normals (numpy, float64).

An :class:`AnalyticObject` is a canonical shape (the unit sphere, or the cube ``[-1, 1]^3``) mapped to the world at
frame ``f`` by ``x = R_f diag(a_f) p + c_f``: rotation ``R_f``, per-axis half extents ``a_f`` and centre ``c_f``.
Constant ``a`` makes the motion rigid; time-varying ``a`` (an ellipsoid whose axes pulse) makes it non-rigid. A
point fixed in canonical coordinates is the same material point at every frame, which is what the 3D tracks follow.

Rays are ``origin + t * direction``; every caller passes directions whose camera-space z is 1, so ``t`` is z-depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("sphere", "ellipsoid", "box")


@dataclass
class AnalyticObject:
    """A textured sphere, ellipsoid or box moving over ``T`` frames.

    Attributes:
        kind: one of ``sphere``, ``ellipsoid`` (unit sphere canonical shape) or ``box`` (cube ``[-1, 1]^3``).
        centres: (T, 3) world centre per frame.
        rotations: (T, 3, 3) canonical-to-world rotation per frame.
        axes: (T, 3) half extents (radii) along the canonical axes per frame.
        texture: (h, w, 3) float32 albedo in [0, 1].
    """

    kind: str
    centres: np.ndarray
    rotations: np.ndarray
    axes: np.ndarray
    texture: np.ndarray

    @property
    def nonrigid(self) -> bool:
        return not np.allclose(self.axes, self.axes[:1])

    def to_canonical(self, points: np.ndarray, frame: int) -> np.ndarray:
        """(N, 3) world points -> (N, 3) canonical coordinates at ``frame``."""
        return (points - self.centres[frame]) @ self.rotations[frame] / self.axes[frame]

    def to_world(self, canonical: np.ndarray, frame: int) -> np.ndarray:
        """(N, 3) canonical coordinates -> (N, 3) world points at ``frame``."""
        return (canonical * self.axes[frame]) @ self.rotations[frame].T + self.centres[frame]

    def intersect(self, origin: np.ndarray, directions: np.ndarray, frame: int) -> np.ndarray:
        """Nearest positive ray parameter of each ray, ``inf`` for a miss.

        Args:
            origin: (3,) shared ray origin (outside the object).
            directions: (R, 3) ray directions.

        Returns:
            (R,) float64.
        """
        o = self.to_canonical(origin[None], frame)[0]
        d = directions @ self.rotations[frame] / self.axes[frame]
        if self.kind == "box":
            return _intersect_unit_cube(o, d)
        return _intersect_unit_sphere(o, d)

    def surface(self, points: np.ndarray, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Texture coordinates and unit world normals of world points on the surface.

        Returns:
            ``(uv, normals)``: (N, 2) in [0, 1] and (N, 3).
        """
        p = self.to_canonical(points, frame)
        if self.kind == "box":
            face_axis = np.abs(p).argmax(axis=1)
            sign = np.sign(p[np.arange(len(p)), face_axis])
            canonical_normal = np.zeros_like(p)
            canonical_normal[np.arange(len(p)), face_axis] = sign
            uv = _cube_uv(p, face_axis, sign)
        else:
            canonical_normal = p / np.linalg.norm(p, axis=1, keepdims=True)
            uv = _sphere_uv(canonical_normal)
        # Normals transform with the inverse transpose of R diag(a), i.e. R diag(1 / a).
        normals = (canonical_normal / self.axes[frame]) @ self.rotations[frame].T
        return uv, normals / np.linalg.norm(normals, axis=1, keepdims=True)

    def sample_surface(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """(count, 3) canonical points on the surface, roughly uniform in area at frame 0."""
        if self.kind != "box":
            points = rng.normal(size=(count, 3))
            return points / np.linalg.norm(points, axis=1, keepdims=True)
        a = self.axes[0]
        face_areas = np.array([a[1] * a[2], a[0] * a[2], a[0] * a[1]])
        face_axis = rng.choice(3, size=count, p=face_areas / face_areas.sum())
        points = rng.uniform(-1.0, 1.0, size=(count, 3))
        points[np.arange(count), face_axis] = rng.choice([-1.0, 1.0], size=count)
        return points


@dataclass
class TexturedPlane:
    """An infinite textured plane (ground or backdrop), tiled with its texture.

    Attributes:
        origin: (3,) a point on the plane.
        axis_u: (3,) unit in-plane direction of texture u.
        axis_v: (3,) unit in-plane direction of texture v, orthogonal to ``axis_u``.
        tile: world size of one texture repeat.
        texture: (h, w, 3) float32 albedo in [0, 1].
    """

    origin: np.ndarray
    axis_u: np.ndarray
    axis_v: np.ndarray
    tile: float
    texture: np.ndarray

    @property
    def normal(self) -> np.ndarray:
        """(3,) unit normal ``axis_u x axis_v``."""
        return np.cross(self.axis_u, self.axis_v)

    def intersect(self, origin: np.ndarray, directions: np.ndarray, frame: int) -> np.ndarray:
        """(R,) ray parameter of the hit in front of ``origin`` (3,), ``inf`` for a miss. Static in time."""
        del frame
        normal = self.normal
        denominator = directions @ normal
        with np.errstate(divide="ignore", invalid="ignore"):
            t = ((self.origin - origin) @ normal) / denominator
        return np.where(np.isfinite(t) & (t > 0), t, np.inf)

    def surface(self, points: np.ndarray, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) texture coordinates (tiled, wrap around) and (N, 3) normals of world points on the plane."""
        del frame
        offsets = points - self.origin
        uv = np.stack([offsets @ self.axis_u, offsets @ self.axis_v], axis=1) / self.tile
        return uv, np.broadcast_to(self.normal, points.shape)


def _intersect_unit_sphere(o: np.ndarray, d: np.ndarray) -> np.ndarray:
    a = np.einsum("ri,ri->r", d, d)
    b = d @ o
    c = o @ o - 1.0
    discriminant = b * b - a * c
    root = np.sqrt(np.maximum(discriminant, 0.0))
    # Stable near root: (-b - root) / a can cancel badly, c / (-b + root) is the same root without cancellation.
    t = np.where(b < 0, c / (-b + root), (-b - root) / a)
    return np.where((discriminant >= 0) & (t > 0), t, np.inf)


def _intersect_unit_cube(o: np.ndarray, d: np.ndarray) -> np.ndarray:
    safe = np.where(d == 0, 1e-300, d)
    t1, t2 = (-1.0 - o) / safe, (1.0 - o) / safe
    t_near = np.minimum(t1, t2).max(axis=1)
    t_far = np.maximum(t1, t2).min(axis=1)
    return np.where((t_far >= t_near) & (t_near > 0), t_near, np.inf)


def _sphere_uv(unit: np.ndarray) -> np.ndarray:
    u = np.arctan2(unit[:, 1], unit[:, 0]) / (2 * np.pi) + 0.5
    v = np.arccos(np.clip(unit[:, 2], -1.0, 1.0)) / np.pi
    return np.stack([u, v], axis=1)


def _cube_uv(p: np.ndarray, face_axis: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """Each of the six faces gets its own cell of a 3x2 grid over the texture."""
    rows = np.arange(len(p))
    first = p[rows, (face_axis + 1) % 3]
    second = p[rows, (face_axis + 2) % 3]
    face = face_axis + 3 * (sign > 0)
    u = (face % 3 + (first + 1) / 2) / 3
    v = (face // 3 + (second + 1) / 2) / 2
    return np.clip(np.stack([u, v], axis=1), 0.0, 1.0)
