"""Camera stage: intrinsics and per-frame poses (COLMAP SfM with checks, rotation-only or fixed fallbacks)."""

from preprocess.cameras.config import CamerasConfig, ChecksConfig
from preprocess.cameras.contact_sheet import contact_sheet_cameras
from preprocess.cameras.estimate import CameraEstimate, estimate_camera_motion, estimate_cameras

__all__ = ["CameraEstimate", "CamerasConfig", "ChecksConfig", "contact_sheet_cameras", "estimate_camera_motion",
           "estimate_cameras"]
