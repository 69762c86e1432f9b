"""Settings of the depth stage."""

from __future__ import annotations

from dataclasses import dataclass

from scene4d.errors import InputError

BACKENDS = ("auto", "geometry")


@dataclass
class DepthConfig:
    """How per-frame depth is made (see :func:`preprocess.depth.estimate_depth`)."""

    backend: str = "auto"
    """``auto`` (a learned depth model when its weights are present, else ``geometry``) or ``geometry``
    (triangulated background where the camera translates, a ground-plane scene prior where it does not)."""
    max_reprojection_px: float = 1.5
    """Triangulated background points whose mean reprojection error exceeds this (pixels) are discarded."""
    min_parallax_deg: float = 1.0
    """Triangulated points seen under a smaller angle between their extreme rays are discarded (depth too uncertain)."""
    min_points: int = 50
    """Fewer valid triangulated points than this and the scene prior is used instead."""
    densify_long_side: int = 160
    """Long side (pixels) of the grid on which sparse depths are spread edge-aware before upsampling."""
    smoothness: float = 1.0
    """Weight of the edge-aware smoothness against the sparse depths when densifying."""
    edge_sigma: float = 20.0
    """Colour difference (0-255 RGB units) over which the smoothness weight between neighbours falls by e^-0.5."""
    camera_height: float = 1.6
    """Scene prior: height of the camera above the ground plane, in metres (sets the scale)."""
    horizon: float = 0.4
    """Scene prior: horizon row in the first frame as a fraction of the image height from the top (the camera is
    assumed to have no roll); moved up if an object's ground contact would lie above it."""
    backdrop_distance: float = 30.0
    """Scene prior: distance (metres) of the backdrop that closes the scene above the horizon and caps the ground."""
    bulge: float = 0.6
    """Depth relief of an object's centre in front of its silhouette, as a fraction of its half-thickness (the
    largest distance from the silhouette) converted to metres at its depth; 0 gives flat cards."""
    temporal_window: int = 5
    """Frames over which an object's per-frame ground-contact depth is median-filtered."""

    def check(self) -> None:
        """Raise :class:`InputError` naming the first invalid setting."""
        if self.backend not in BACKENDS:
            raise InputError(f"depth.backend must be one of {BACKENDS}, got {self.backend!r}")
        positive = {"max_reprojection_px": self.max_reprojection_px, "camera_height": self.camera_height,
                    "backdrop_distance": self.backdrop_distance, "smoothness": self.smoothness,
                    "edge_sigma": self.edge_sigma}
        for name, value in positive.items():
            if not value > 0:
                raise InputError(f"depth.{name} must be positive, got {value}")
        if self.min_parallax_deg < 0 or self.min_points < 1 or self.bulge < 0:
            raise InputError("depth: min_parallax_deg and bulge must be >= 0 and min_points >= 1")
        if not 16 <= self.densify_long_side <= 2048:
            raise InputError(f"depth.densify_long_side must be in [16, 2048], got {self.densify_long_side}")
        if not 0.0 <= self.horizon < 1.0:
            raise InputError(f"depth.horizon must be in [0, 1), got {self.horizon}")
        if self.temporal_window < 1:
            raise InputError(f"depth.temporal_window must be >= 1, got {self.temporal_window}")
