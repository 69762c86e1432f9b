"""Per-object, per-frame masks: user-given (DAVIS layouts, propagated when partial) or weight-free motion
segmentation; learned backends plug in through :class:`~preprocess.masks.segment.LearnedSegmenter`."""

from preprocess.masks.config import MasksConfig, MotionConfig, PropagationConfig
from preprocess.masks.contact_sheet import contact_sheet_masks
from preprocess.masks.segment import LearnedSegmenter, segment_objects

__all__ = ["LearnedSegmenter", "MasksConfig", "MotionConfig", "PropagationConfig", "contact_sheet_masks",
           "segment_objects"]
