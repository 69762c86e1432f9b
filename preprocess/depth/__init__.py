"""Per-frame depth with confidence (weight-free: triangulated background or a ground-plane scene prior)."""

from preprocess.depth.config import DepthConfig
from preprocess.depth.contact_sheet import contact_sheet_depth
from preprocess.depth.stage import estimate_depth

__all__ = ["DepthConfig", "contact_sheet_depth", "estimate_depth"]
