"""Typed settings of the camera stage (nerfstudio-style: a docstring line under every field)."""

from __future__ import annotations

from dataclasses import dataclass, field

from scene4d.errors import InputError

BACKENDS = ("auto", "colmap", "rotation", "fixed")
MAPPERS = ("global", "incremental", "incremental-relaxed")
FLOW_PRESETS = ("ultrafast", "fast", "medium")


@dataclass
class ChecksConfig:
    """When an SfM reconstruction is accepted (COLMAP reports success on degenerate results)."""

    min_registered_fraction: float = 0.9
    """Fraction of the frames that one model must register; the few missing poses are interpolated."""
    min_points: int = 100
    """Fewest triangulated 3D points in the model."""
    min_points_per_frame: float = 3.0
    """Fewest 3D points per registered frame (a model this sparse is a near-degenerate fit)."""
    max_reprojection_px: float = 1.0
    """Largest mean reprojection error of the model's points, in pixels."""
    min_fov_deg: float = 20.0
    """Narrowest plausible diagonal field of view (a longer focal length is a sign of an unconstrained fit)."""
    max_fov_deg: float = 120.0
    """Widest plausible diagonal field of view."""
    max_step_ratio: float = 5.0
    """A camera step (centre or rotation) this many times the median of its neighbours' is a pose jump."""
    step_window: int = 3
    """Neighbours on each side whose steps give the local median for the jump test."""
    min_jump_translation: float = 0.02
    """Centre steps below this (in units of the median scene depth) are never jumps (noise on a still camera)."""
    min_jump_rotation_deg: float = 1.0
    """Rotation steps below this many degrees are never jumps."""


@dataclass
class CamerasConfig:
    """How camera intrinsics and per-frame poses are estimated."""

    backend: str = "auto"
    """auto (fixed if the background does not move, else COLMAP then rotation-only), colmap, rotation or fixed."""
    intrinsics: list[float] = field(default_factory=list)
    """Known ``[fx, fy, cx, cy]`` in pixels of the source video (pixel centres at +0.5); empty: unknown."""
    fov_deg: float = 0.0
    """Known diagonal field of view in degrees, used when ``intrinsics`` is empty (0: unknown)."""
    prior_fov_deg: float = 60.0
    """Diagonal field of view assumed when the focal length cannot be measured."""
    min_focal_sensitivity: float = 1.2
    """SfM's focal length counts as measured only if 1.5x off it the re-adjusted reprojection error grows by
    this factor; otherwise (or when only the focal check fails) the mapper is re-run with the prior focal
    length held fixed."""
    static_threshold_px: float = 0.5
    """The camera is fixed when the background's median flow stays below this, consecutively and end to end."""
    mappers: list[str] = field(default_factory=lambda: list(MAPPERS))
    """COLMAP mappers tried in order until one passes the checks (global, incremental, incremental-relaxed)."""
    max_features: int = 4096
    """Most SIFT features per frame."""
    first_octave: int = -1
    """SIFT's first octave: -1 upsamples the image (4-5x the features of 0 at 480 px, and needed on the
    low-texture clips; ~3x slower), 0 does not."""
    exhaustive_max_frames: int = 20
    """Match every pair of frames when the clip has at most this many, otherwise match sequentially."""
    sequential_overlap: int = 8
    """Sequential matching: each frame is matched to this many following ones (and to quadratically spaced
    later ones)."""
    mask_dilation_px: int = 5
    """Object masks grow by this much before features are excluded (descriptors near an edge see the object)."""
    num_threads: int = -1
    """Threads for COLMAP (-1: all cores)."""
    seed: int = 0
    """Random seed for COLMAP's RANSAC and mapping, for repeatable results."""
    max_tracks_per_view: int = 300
    """Global mapping keeps only this many tracks per frame (positioning time grows fast with more)."""
    flow_preset: str = "medium"
    """DIS optical flow preset for the background motion (static test, homographies, checking tracks)."""
    homography_threshold_px: float = 1.5
    """RANSAC inlier threshold of the background homographies."""
    min_homography_inliers: int = 50
    """A consecutive-frame homography with fewer inliers counts as failed (its rotation is carried over)."""
    track_spacing_px: int = 12
    """Grid spacing of the background tracks used to measure reprojection error."""
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    """Acceptance tests of SfM reconstructions."""


def check_config(config: CamerasConfig) -> None:
    """Raise :class:`InputError` naming the first invalid setting."""
    if config.backend not in BACKENDS:
        raise InputError(f"cameras.backend must be one of {', '.join(BACKENDS)}, got {config.backend!r}")
    if len(config.intrinsics) not in (0, 4):
        raise InputError(f"cameras.intrinsics must be [fx, fy, cx, cy] or empty, got {list(config.intrinsics)}")
    if config.intrinsics and min(config.intrinsics[:2]) <= 0:
        raise InputError(f"cameras.intrinsics: focal lengths must be positive, got {list(config.intrinsics)}")
    for name in ("fov_deg", "prior_fov_deg"):
        value = getattr(config, name)
        if not (name == "fov_deg" and value == 0) and not 1.0 <= value <= 170.0:
            raise InputError(f"cameras.{name} must be in [1, 170] degrees, got {value}")
    unknown = [m for m in config.mappers if m not in MAPPERS]
    if unknown:
        raise InputError(f"cameras.mappers: unknown {unknown[0]!r} (choose from {', '.join(MAPPERS)})")
    if config.flow_preset not in FLOW_PRESETS:
        raise InputError(f"cameras.flow_preset must be one of {', '.join(FLOW_PRESETS)}, got {config.flow_preset!r}")
    if config.min_focal_sensitivity < 1:
        raise InputError(f"cameras.min_focal_sensitivity must be >= 1, got {config.min_focal_sensitivity}")
    positive = {"static_threshold_px": config.static_threshold_px, "max_features": config.max_features,
                "sequential_overlap": config.sequential_overlap, "max_tracks_per_view": config.max_tracks_per_view,
                "homography_threshold_px": config.homography_threshold_px,
                "min_homography_inliers": config.min_homography_inliers,
                "track_spacing_px": config.track_spacing_px}
    for name, value in positive.items():
        if value <= 0:
            raise InputError(f"cameras.{name} must be positive, got {value}")
    if config.mask_dilation_px < 0:
        raise InputError(f"cameras.mask_dilation_px must be >= 0, got {config.mask_dilation_px}")
    checks = config.checks
    if not 0 < checks.min_registered_fraction <= 1:
        raise InputError(f"cameras.checks.min_registered_fraction must be in (0, 1], "
                         f"got {checks.min_registered_fraction}")
    if not 0 < checks.min_fov_deg < checks.max_fov_deg < 180:
        raise InputError(f"cameras.checks: need 0 < min_fov_deg < max_fov_deg < 180, "
                         f"got {checks.min_fov_deg} and {checks.max_fov_deg}")
