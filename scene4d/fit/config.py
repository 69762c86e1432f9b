"""Typed settings of per-object fitting (a section of the pipeline config)."""

from __future__ import annotations

from dataclasses import dataclass, field

from scene4d.guidance.config import GuidanceConfig


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
    """Local rigidity of the control points (relative to the object's size squared)."""
    smoothness: float = 10.0
    """Acceleration of the object trajectory and control points over time (relative to size squared)."""
    anisotropy: float = 0.01
    """Penalty on needle-like Gaussians."""


@dataclass
class FitConfig:
    """How each object's 4D Gaussians are initialised and optimised."""

    static_iters: int = 300
    """Iterations fitting the canonical shape on the reference frame."""
    motion_iters: int = 300
    """Iterations fitting trajectory and deformation over all frames (shape frozen)."""
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
    control_points: int = 64
    """Control points of the skinning deformation."""
    skinning_neighbours: int = 4
    """Control points blended per Gaussian."""
    knots_per_frame: float = 0.5
    """Spline control values per video frame for deformation and trajectory (smoothness in time)."""
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
