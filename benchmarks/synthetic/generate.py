"""Seeded synthetic scenes: 1-3 textured analytic objects (one pulsing non-rigidly) over a textured ground, in front
of a textured backdrop, filmed by an orbiting or static pinhole camera, with exact ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from benchmarks.synthetic import cameras, textures
from benchmarks.synthetic.raycast import camera_rays, cast, render
from benchmarks.synthetic.shapes import AnalyticObject, TexturedPlane

LOOK_AT = np.array([0.0, 0.4, 0.5])
CAMERA_RADIUS = 4.5
CAMERA_HEIGHT = 2.2
BACKDROP_Y = 4.0
LIGHT = np.array([0.3, -0.5, 1.0]) / np.linalg.norm([0.3, -0.5, 1.0])
EXTRA_VIEW_AZIMUTH = 30.0
PULSE_AMPLITUDE = 0.25
VISIBILITY_RTOL = 1e-6
MAX_PLACEMENT_ATTEMPTS = 200
MAX_LAYOUT_ATTEMPTS = 50


@dataclass
class SyntheticView:
    """Everything one camera sees over the clip.

    Attributes:
        images: (T, H, W, 3) uint8 RGB.
        depth: (T, H, W) float32 z-depth of the nearest surface at each pixel centre.
        masks: (O, T, H, W) bool visible mask of each object, in ``object_ids`` order.
        Ks: (T, 3, 3) float64 intrinsics in pixels.
        viewmats: (T, 4, 4) float64 world-to-camera matrices (OpenCV axes).
    """

    images: np.ndarray
    depth: np.ndarray
    masks: np.ndarray
    Ks: np.ndarray
    viewmats: np.ndarray


@dataclass
class SyntheticScene:
    """A rendered synthetic clip with its ground truth.

    Attributes:
        seed: the generator's seed.
        view: the input camera's view (what the pipeline gets).
        extra_views: views from cameras the pipeline never sees, at the same times (held-out novel views).
        objects: the O moving objects; object id ``i + 1`` is ``objects[i]``.
        planes: ground and backdrop.
        tracks3d: (N, T, 3) float32 world positions of surface points fixed in their object's canonical frame.
        tracks2d: (N, T, 2) float32 their projections in the input view (pixel centres at +0.5).
        track_visibility: (N, T) bool, visible in the input view (in the image, in front, not occluded).
        track_labels: (N,) int32 object id of each track.
    """

    seed: int
    view: SyntheticView
    extra_views: list[SyntheticView]
    objects: list[AnalyticObject]
    planes: list[TexturedPlane]
    tracks3d: np.ndarray
    tracks2d: np.ndarray
    track_visibility: np.ndarray
    track_labels: np.ndarray

    @property
    def object_ids(self) -> list[int]:
        return list(range(1, len(self.objects) + 1))

    @property
    def num_frames(self) -> int:
        return self.view.images.shape[0]


def _bounding_radius(kind: str, axes: np.ndarray) -> float:
    return float(np.linalg.norm(axes, axis=1).max() if kind == "box" else axes.max())


def _sample_object(rng: np.random.Generator, kind: str, nonrigid: bool, times: np.ndarray,
                   texture: np.ndarray) -> AnalyticObject:
    low, high = {"sphere": (0.35, 0.6), "ellipsoid": (0.3, 0.65), "box": (0.25, 0.5)}[kind]
    base_axes = np.full(3, rng.uniform(low, high)) if kind == "sphere" else rng.uniform(low, high, size=3)
    axes = np.repeat(base_axes[None], len(times), axis=0)
    if nonrigid:
        cycles, phases = rng.uniform(0.75, 1.5), rng.uniform(0, 2 * np.pi, size=3)
        axes = axes * (1 + PULSE_AMPLITUDE * np.sin(2 * np.pi * cycles * times[:, None] + phases))
    spin_axis = rng.normal(size=3)
    spin_axis = spin_axis / np.linalg.norm(spin_axis)
    spin = Rotation.from_rotvec(np.radians(rng.uniform(30, 120)) * np.outer(times, spin_axis))
    rotations = (spin * Rotation.random(random_state=rng)).as_matrix()
    radius = _bounding_radius(kind, axes)
    velocity = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.5, 0.5), rng.uniform(-0.2, 0.3)])
    lift = radius + rng.uniform(0.0, 0.4) + max(0.0, -velocity[2])  # stays above the ground
    start = np.array([rng.uniform(-1.5, 1.5), rng.uniform(-0.4, 1.2), lift])
    centres = start + np.outer(times, velocity)
    return AnalyticObject(kind=kind, centres=centres, rotations=rotations, axes=axes, texture=texture)


def _fits(candidate: AnalyticObject, placed: list[AnalyticObject], K: np.ndarray, viewmats: np.ndarray,
          width: int, height: int) -> bool:
    """Whether ``candidate`` stays in the input view (centre 10% inside the border) at every frame, clear of the
    objects already placed, and never hides one of them, or is hidden, for more than about half its size."""

    def projection(obj: AnalyticObject) -> tuple[np.ndarray, np.ndarray]:
        camera = np.einsum("tij,tj->ti", viewmats[:, :3, :3], obj.centres) + viewmats[:, :3, 3]
        pixels = camera[:, :2] / camera[:, 2:] @ K[:2, :2].T + K[:2, 2]
        return pixels, K[0, 0] * _bounding_radius(obj.kind, obj.axes) / camera[:, 2]

    pixels, pixel_radius = projection(candidate)
    size = np.array([width, height])
    if np.any(pixels < 0.1 * size) or np.any(pixels > 0.9 * size):
        return False
    radius = _bounding_radius(candidate.kind, candidate.axes)
    for other in placed:
        gaps = np.linalg.norm(candidate.centres - other.centres, axis=1)
        other_pixels, other_radius = projection(other)
        if np.any(gaps < radius + _bounding_radius(other.kind, other.axes) + 0.05):
            return False
        if np.any(np.linalg.norm(pixels - other_pixels, axis=1) < 0.6 * (pixel_radius + other_radius)):
            return False
    return True


def _place_objects(rng: np.random.Generator, object_textures: list[np.ndarray], times: np.ndarray, K: np.ndarray,
                   viewmats: np.ndarray, width: int, height: int) -> list[AnalyticObject] | None:
    """Objects placed one after another by rejection; None when one cannot be placed beside the others."""
    objects: list[AnalyticObject] = []
    for index, texture in enumerate(object_textures):
        for _ in range(MAX_PLACEMENT_ATTEMPTS):
            kind = "ellipsoid" if index == 0 else str(rng.choice(["sphere", "ellipsoid", "box"]))
            candidate = _sample_object(rng, kind, index == 0, times, texture)
            if _fits(candidate, objects, K, viewmats, width, height):
                objects.append(candidate)
                break
        else:
            return None
    return objects


def _planes(rng: np.random.Generator) -> list[TexturedPlane]:
    ground = TexturedPlane(origin=np.zeros(3), axis_u=np.array([1.0, 0, 0]), axis_v=np.array([0, 1.0, 0]),
                           tile=2.0, texture=textures.load_texture(str(rng.choice(textures.GROUND_TEXTURES)),
                                                                   tint=rng.uniform(0.5, 1.0, size=3)))
    backdrop = TexturedPlane(origin=np.array([0, BACKDROP_Y, 4.0]), axis_u=np.array([-1.0, 0, 0]),
                             axis_v=np.array([0, 0, -1.0]), tile=6.0,
                             texture=textures.load_texture(str(rng.choice(textures.BACKDROP_TEXTURES))))
    return [ground, backdrop]


def _render_view(surfaces: list, num_objects: int, K: np.ndarray, viewmats: np.ndarray, width: int,
                 height: int) -> SyntheticView:
    frames = [render(surfaces, K, viewmat, width, height, f, LIGHT) for f, viewmat in enumerate(viewmats)]
    labels = np.stack([label for _, _, label in frames])
    depth = np.stack([d for _, d, _ in frames])
    if not np.isfinite(depth).all():
        raise RuntimeError("synthetic scene: some camera ray hits nothing; keep azimuths within the backdrop")
    return SyntheticView(images=np.round(np.stack([rgb for rgb, _, _ in frames]) * 255).astype(np.uint8),
                         depth=depth, masks=np.stack([labels == i for i in range(num_objects)]),
                         Ks=np.repeat(K[None], len(viewmats), axis=0), viewmats=viewmats)


def _track_visibility(surfaces: list, object_index: int, points: np.ndarray, K: np.ndarray, viewmat: np.ndarray,
                      width: int, height: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """(P, 2) projections of (P, 3) world points on object ``object_index`` and (P,) whether each is visible."""
    camera = points @ viewmat[:3, :3].T + viewmat[:3, 3]
    z = camera[:, 2]
    pixels = camera[:, :2] / z[:, None] @ K[:2, :2].T + K[:2, 2]
    origin, directions = camera_rays(K, viewmat, pixels)
    hits = cast(surfaces, origin, directions, frame)
    inside = (z > 0) & np.all((pixels >= 0) & (pixels < np.array([width, height])), axis=1)
    unoccluded = (hits.label == object_index) & (np.abs(hits.depth - z) <= VISIBILITY_RTOL * z)
    return pixels, inside & unoccluded


def generate_scene(seed: int, num_frames: int = 24, width: int = 128, height: int = 96,
                   num_objects: int | None = None, camera_motion: str = "orbit", num_extra_views: int = 2,
                   points_per_object: int = 64, fov_x_degrees: float = 55.0) -> SyntheticScene:
    """Generate and ray-cast a reproducible synthetic scene.

    Args:
        seed: everything (layout, motion, textures, camera sweep, track points) follows from it.
        num_frames: T >= 1.
        width, height: image size in pixels.
        num_objects: 1-3, drawn from the seed when None. Object 1 is always an ellipsoid whose axes pulse
            (non-rigid); the others are rigid spheres, ellipsoids or boxes that translate and spin.
        camera_motion: ``orbit`` (a 16-30 degree arc around the scene) or ``static``.
        num_extra_views: 0-2 held-out cameras at azimuth offsets of +30 and -30 degrees (and 0.4, 0.8 higher),
            moving with the input camera.
        points_per_object: 3D tracks per object.
        fov_x_degrees: horizontal field of view of every camera.

    Returns:
        :class:`SyntheticScene`.
    """
    if num_frames < 1 or width < 1 or height < 1:
        raise ValueError(f"need num_frames, width, height >= 1, got {num_frames}, {width}, {height}")
    if num_objects is not None and not 1 <= num_objects <= 3:
        raise ValueError(f"num_objects: expected 1 to 3, got {num_objects}")
    if camera_motion not in ("orbit", "static"):
        raise ValueError(f"camera_motion: expected 'orbit' or 'static', got {camera_motion!r}")
    if num_extra_views > 2 or fov_x_degrees > 80:
        raise ValueError("at most 2 extra views and an 80 degree field of view keep every ray on the backdrop")
    rng = np.random.default_rng(seed)
    times = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    num_objects = int(rng.integers(1, 4)) if num_objects is None else num_objects
    sweep = rng.uniform(8.0, 15.0) if camera_motion == "orbit" else 0.0
    azimuths = rng.uniform(-10.0, 10.0) + sweep * (2 * times - 1)
    K = cameras.intrinsics(width, height, fov_x_degrees)
    viewmats = cameras.orbit(LOOK_AT, CAMERA_RADIUS, CAMERA_HEIGHT, azimuths)
    object_textures = [textures.load_texture(str(name))
                       for name in rng.choice(textures.OBJECT_TEXTURES, size=num_objects, replace=False)]
    for _ in range(MAX_LAYOUT_ATTEMPTS):
        objects = _place_objects(rng, object_textures, times, K, viewmats, width, height)
        if objects is not None:
            break
    else:
        raise RuntimeError(f"synthetic scene: no valid layout for seed {seed}")
    planes = _planes(rng)
    surfaces = [*objects, *planes]

    view = _render_view(surfaces, num_objects, K, viewmats, width, height)
    extra_views = []
    for k in range(num_extra_views):
        offset = EXTRA_VIEW_AZIMUTH * (-1) ** k
        extra = cameras.orbit(LOOK_AT, CAMERA_RADIUS, CAMERA_HEIGHT + 0.4 * (k + 1), azimuths + offset)
        extra_views.append(_render_view(surfaces, num_objects, K, extra, width, height))

    canonical = [obj.sample_surface(rng, points_per_object) for obj in objects]
    tracks3d = np.stack([np.stack([obj.to_world(points, f) for f in range(num_frames)], axis=1)
                         for obj, points in zip(objects, canonical)]).reshape(-1, num_frames, 3)
    tracks2d = np.zeros((len(tracks3d), num_frames, 2))
    visibility = np.zeros((len(tracks3d), num_frames), dtype=bool)
    labels = np.repeat(np.arange(1, num_objects + 1, dtype=np.int32), points_per_object)
    for f in range(num_frames):
        for index in range(num_objects):
            rows = labels == index + 1
            tracks2d[rows, f], visibility[rows, f] = _track_visibility(
                surfaces, index, tracks3d[rows, f], K, viewmats[f], width, height, f)
    return SyntheticScene(seed=seed, view=view, extra_views=extra_views, objects=objects, planes=planes,
                          tracks3d=tracks3d.astype(np.float32), tracks2d=tracks2d.astype(np.float32),
                          track_visibility=visibility, track_labels=labels)
