"""scene4d: compositional 4D Gaussian reconstruction of monocular videos (core: conventions, contracts,
Gaussians, rendering and per-object fitting)."""

__version__ = "0.1.0"
