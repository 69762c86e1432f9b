"""Settings of the point-tracking stage."""

from __future__ import annotations

from dataclasses import dataclass

from scene4d.errors import InputError

BACKENDS = ("auto", "flow")


@dataclass
class TracksConfig:
    """How long-term 2D point tracks are made (see :func:`preprocess.tracks.track_points`)."""

    backend: str = "auto"
    """``auto`` (a learned tracker when its weights are present, else ``flow``) or ``flow`` (chained DIS flow)."""
    flow_preset: str = "medium"
    """DIS optical-flow preset between consecutive frames: ultrafast, fast or medium."""
    flow_finest_scale: int = 0
    """Finest DIS pyramid level (0: full resolution, most accurate; 1 or 2: about 4x or 15x faster)."""
    fb_threshold: float = 0.7
    """Forward-backward round-trip error (pixels) above which a point counts as occluded or lost."""
    fb_relative: float = 0.05
    """Extra forward-backward tolerance, as a fraction of the point's displacement."""
    points_per_object: int = 300
    """Target number of query points per object and query frame (so small objects are sampled densely)."""
    background_points: int = 1200
    """Target number of background query points per query frame."""
    min_spacing: int = 4
    """Smallest grid cell (pixels) between query points."""
    max_spacing: int = 40
    """Largest grid cell (pixels) between query points."""
    query_every: int = 8
    """Frames between query frames (the last frame is always one); new points are added only where no track is."""
    mask_margin: int = 2
    """Pixels of tolerance when checking that an object's point stays inside its mask; query points start twice
    this far inside (flow a few pixels from a moving silhouette blends in the other side's motion)."""
    background_band: int = 6
    """Background points closer than this (pixels) to an object count as occluded: flow there follows the object."""
    min_texture: float = 2e-4
    """Minimum structure-tensor eigenvalue (intensities in [0, 1]) of a query point; flat regions get none."""
    reacquire_frames: int = 8
    """A lost point is predicted from its neighbours' motion for up to this many frames and re-acquired when its
    appearance matches again (0: a lost point stays lost)."""
    min_ncc: float = 0.85
    """Normalised cross-correlation of 9x9 patches a point must keep from one frame to the next (catches points
    dragged along a moving edge) and reach again with its last-seen patch to be re-acquired."""
    min_visible_frames: int = 3
    """Tracks visible in fewer frames than this (or than the clip, if shorter) are dropped."""

    def check(self) -> None:
        """Raise :class:`~scene4d.errors.InputError` naming the first invalid setting."""
        if self.backend not in BACKENDS:
            raise InputError(f"tracks.backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.flow_preset not in ("ultrafast", "fast", "medium"):
            raise InputError(f"tracks.flow_preset must be ultrafast, fast or medium, got {self.flow_preset!r}")
        if not 0 <= self.flow_finest_scale <= 3:
            raise InputError(f"tracks.flow_finest_scale must be in [0, 3], got {self.flow_finest_scale}")
        if self.fb_threshold <= 0 or self.fb_relative < 0:
            raise InputError(f"tracks: fb_threshold must be > 0 and fb_relative >= 0, got {self.fb_threshold}, "
                             f"{self.fb_relative}")
        if self.points_per_object < 1 or self.background_points < 0:
            raise InputError(f"tracks: points_per_object must be >= 1 and background_points >= 0, got "
                             f"{self.points_per_object} and {self.background_points}")
        if not 1 <= self.min_spacing <= self.max_spacing:
            raise InputError(f"tracks: need 1 <= min_spacing <= max_spacing, got {self.min_spacing}, "
                             f"{self.max_spacing}")
        if self.query_every < 1:
            raise InputError(f"tracks.query_every must be >= 1, got {self.query_every}")
        if self.mask_margin < 0 or self.background_band < 0 or self.reacquire_frames < 0 or self.min_visible_frames < 1:
            raise InputError("tracks: mask_margin, background_band and reacquire_frames must be >= 0, "
                             "min_visible_frames >= 1")
        if not -1.0 <= self.min_ncc <= 1.0:
            raise InputError(f"tracks.min_ncc must be in [-1, 1], got {self.min_ncc}")
