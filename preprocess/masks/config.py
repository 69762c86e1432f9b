"""Typed settings of the object-mask stage (user-given masks, propagation, motion segmentation)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PropagationConfig:
    """Spreading masks from annotated frames to every frame (flow warping + GrabCut with anchored colour models)."""

    flow_preset: str = "medium"
    """DIS preset for the frame-to-frame flow (``ultrafast``, ``fast``, ``medium``)."""
    long_side: int = 480
    """Work at this image size (longer side, pixels); masks are resized back to the frames' size."""
    band: float = 0.06
    """Half-width of the uncertain band around the warped boundary, as a fraction of the object's size."""
    min_band: int = 3
    """Smallest uncertain band half-width, in pixels."""
    margin: float = 0.5
    """Crop margin around an object for GrabCut, as a fraction of its bounding-box size."""
    anchor_colors: bool = True
    """GrabCut's colour models also learn from the annotated frame (holds back drift), not only the current one."""
    grabcut_iterations: int = 2
    """GrabCut iterations per frame and object (0: flow warping only, no refinement)."""


@dataclass
class MotionConfig:
    """Finding independently moving objects from dense flow against the camera's motion."""

    flow_preset: str = "medium"
    """DIS preset for the flow between neighbouring frames."""
    long_side: int = 384
    """Work at this image size (longer side, pixels); masks are resized back to the frames' size."""
    gaps: tuple[int, ...] = (1, 2, 4)
    """Frame offsets (each direction) whose flow residuals are accumulated into one frame's motion evidence."""
    threshold: float = 3.0
    """Foreground where the residual exceeds this many robust standard deviations of the background's."""
    min_residual: float = 0.5
    """Residual floor in pixels per frame of offset: smaller motion is never evidence (flow noise)."""
    min_color: float = 12.0
    """Colour-difference floor (Lab units) for the evidence of fast objects whose flow failed."""
    texture_threshold: float = 2e-4
    """Smallest structure-tensor eigenvalue (intensities in [0, 1]) for a pixel's flow to count as evidence."""
    remove_shadows: bool = True
    """Pixels that are darker, same-chroma copies of the background in most neighbours (cast shadows) are
    evidence of no motion."""
    min_area: float = 0.002
    """Segments smaller than this fraction of the image are dropped."""
    min_presence: float = 0.3
    """Tracks present in fewer than this fraction of the frames are dropped (flicker)."""
    match_iou: float = 0.2
    """Smallest IoU between a flow-warped mask and a new segment to continue its identity."""
    grabcut_iterations: int = 3
    """GrabCut iterations for the boundary refinement (0: no refinement)."""


@dataclass
class MasksConfig:
    """Which backend produces the per-object masks, and its settings."""

    backend: str = "auto"
    """``auto`` (given masks when a folder is given, else the first available learned backend, else motion),
    ``masks``, ``motion``, ``sam`` or ``sam2``."""
    propagation: PropagationConfig = field(default_factory=PropagationConfig)
    """Settings for spreading partial user masks to every frame."""
    motion: MotionConfig = field(default_factory=MotionConfig)
    """Settings for weight-free motion segmentation."""
