"""Typed settings of per-object fitting (a section of the pipeline config)."""

from __future__ import annotations

from dataclasses import dataclass, field

from scene4d.errors import InputError
from scene4d.guidance.config import GuidanceConfig

DEFORMATIONS = ("control_points", "hexplane")


@dataclass
class LossWeights:
    """Weight of each named loss in :mod:`scene4d.losses` (0 turns a loss off)."""

    rgb: float = 1.0
    """Masked L1 colour error."""
    dssim: float = 0.2
    """Structural dissimilarity."""
    mask: float = 1.0
    """Rendered opacity against the object mask."""
    depth: float = 0.1
    """Scale- and shift-invariant depth error against the depth stage."""
    tracks: float = 0.01
    """Huber reprojection error of anchored points against the 2D tracks (pixels)."""
    arap: float = 1.0
    """Local rigidity of the control points (relative to the object's size squared; control-point deformation)."""
    smoothness: float = 10.0
    """Acceleration over time of the object trajectory and, with the control-point deformation, of the control
    points (relative to the object's size squared)."""
    plane_tv: float = 1e-3
    """Total variation of the hexplane's feature planes along their spatial axes (hexplane deformation)."""
    plane_time: float = 1e-2
    """Second difference of the hexplane's time planes along time (hexplane deformation)."""
    anisotropy: float = 0.01
    """Penalty on needle-like Gaussians."""


@dataclass
class FitConfig:
    """How each object's 4D Gaussians are initialised and optimised."""

    static_iters: int = 300
    """Iterations fitting the canonical shape on the reference frame."""
    motion_iters: int = 900
    """Iterations fitting trajectory and deformation over all frames (shape frozen). The motion converges
    slowly: ``python benchmarks/fit_bench.py --clips ds4d_stroller`` gives the person 20.8-20.9 / 18.0-18.5 dB
    training / hidden PSNR with 900 (two runs: the fits vary by up to 0.5 dB between runs) and 18.0 / 17.0
    with ``--set motion_iters=300`` (the stroller 24.7-24.9 / 23.5 and 23.8 / 22.6)."""
    joint_iters: int = 300
    """Iterations refining everything together."""
    frames_per_step: int = 2
    """Frames rendered per iteration in the motion and joint stages."""
    init_points: int = 3000
    """Pixels lifted from the reference frame to initialise the Gaussians (before mirroring)."""
    mirror_back: bool = True
    """Fill the unseen back by mirroring the visible surface behind the object's centre."""
    init_opacity: float = 0.5
    """Initial opacity of every Gaussian."""
    sh_degree: int = 0
    """Spherical-harmonics degree of the colours (0: view-independent)."""
    deformation: str = "control_points"
    """Non-rigid deformation in the canonical frame: control_points (sparse control points blended by skinning,
    SC-GS) or hexplane (feature planes over space and time decoded by a small MLP, as 4DGS / DreamScene4D)."""
    control_points: int = 256
    """Control points of the skinning deformation. On the three ds4d clips at 256 px (``benchmarks/fit_bench.py``)
    256 instead of 64 raised the training PSNR inside the masks of all five objects by 0.5 to 1.6 dB and the
    hidden-frame PSNR of three by 0.25 to 0.6 dB (the ball unchanged, the stroller clip's person 1.0 lower), at
    about the same fit time."""
    skinning_neighbours: int = 4
    """Control points blended per Gaussian."""
    knots_per_frame: float = 0.5
    """Spline control values per video frame for deformation and trajectory (smoothness in time)."""
    hexplane_resolutions: list[int] = field(default_factory=lambda: [16, 32])
    """Hexplane samples along each spatial axis of the object's box, one entry per resolution level."""
    hexplane_times_per_frame: float = 0.5
    """Hexplane samples along time per video frame (at least 2; fewer is smoother in time)."""
    hexplane_channels: int = 16
    """Features per hexplane plane."""
    hexplane_width: int = 64
    """Hidden width of the MLP decoding hexplane features into an offset and a rotation."""
    lr_hexplane: float = 1e-2
    """Learning rate of the hexplane's planes and decoder (its offsets are relative to the object's size)."""
    max_gaussians: int = 20000
    """Densification stops adding Gaussians beyond this count."""
    densify: bool = True
    """Clone, split and prune Gaussians during the static and joint stages (gsplat's default strategy)."""
    lr_means: float = 1.6e-3
    """Learning rate of Gaussian centres, relative to the object's size."""
    lr_motion: float = 5e-3
    """Learning rate of trajectory and deformation knots (translations relative to the object's size)."""
    window_margin: float = 0.25
    """Fit through windows around the object (its largest extent plus this fraction on each side, at least
    8 pixels) rather than whole frames: fewer pixels to render, and the colour and mask losses weigh a small
    object as much as a large one against the motion priors. Negative: fit whole frames."""
    seed: int = 0
    """Random seed (initial sampling, backgrounds, frame batches)."""
    backend: str = "auto"
    """Render backend: auto, cpu-kernel, torch, gsplat."""
    weights: LossWeights = field(default_factory=LossWeights)
    """Loss weights."""
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    """Score distillation on novel views (off unless a diffusion model's weights are given)."""

    def __post_init__(self) -> None:
        # Checked here rather than when the fit stage starts: a typo fails at load time, before preprocessing.
        if self.deformation not in DEFORMATIONS:
            raise InputError(f"fit.deformation must be one of {', '.join(DEFORMATIONS)}, got {self.deformation!r}")
        if self.deformation == "hexplane":
            if not self.hexplane_resolutions or min(self.hexplane_resolutions) < 2:
                raise InputError(f"fit.hexplane_resolutions must be a non-empty list of values >= 2, "
                                 f"got {list(self.hexplane_resolutions)}")
            for name in ("hexplane_times_per_frame", "hexplane_channels", "hexplane_width", "lr_hexplane"):
                if getattr(self, name) <= 0:
                    raise InputError(f"fit.{name} must be positive, got {getattr(self, name)}")
