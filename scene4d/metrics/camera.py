"""Camera trajectory accuracy: Umeyama alignment, absolute trajectory error (ATE), relative pose error (RPE).

Poses are world-to-camera 4x4 matrices (``scene4d.conventions``), ``(T, 4, 4)``. A monocular trajectory is known
up to a similarity, so ATE aligns the predicted camera centres to the true ones with a Sim(3) (Umeyama 1991) before
measuring, and RPE uses that alignment's scale for the relative translations.
"""

from __future__ import annotations

import torch
from kornia.geometry.conversions import rotation_matrix_to_axis_angle

ALIGN_MODES = ("sim3", "se3", "none")


def umeyama(source: torch.Tensor, target: torch.Tensor, with_scale: bool = True
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares similarity with ``target ~ scale * rotation @ source + translation``.

    Args:
        source: (N, 3) points.
        target: (N, 3) corresponding points.
        with_scale: fit the scale (Sim(3)); otherwise scale is 1 (SE(3)).

    Returns:
        ``(scale, rotation, translation)``: 0-dim, (3, 3) proper rotation, (3,). When ``source`` has no spread
        (e.g. a static camera) the scale is 1 and the rotation the identity.
    """
    if source.ndim != 2 or source.shape[1] != 3 or source.shape != target.shape:
        raise ValueError(f"source and target: expected matching (N, 3), got {tuple(source.shape)} "
                         f"and {tuple(target.shape)}")
    mean_s, mean_t = source.mean(dim=0), target.mean(dim=0)
    centred_s, centred_t = source - mean_s, target - mean_t
    variance = centred_s.square().sum(dim=1).mean()
    if variance <= 1e-12 * max(float(mean_s.square().sum()), 1.0):
        rotation = torch.eye(3, dtype=source.dtype, device=source.device)
        return source.new_tensor(1.0), rotation, mean_t - mean_s
    covariance = centred_t.T @ centred_s / source.shape[0]
    u, singular, vh = torch.linalg.svd(covariance)
    signs = torch.ones(3, dtype=source.dtype, device=source.device)
    signs[2] = torch.sign(torch.linalg.det(u) * torch.linalg.det(vh))
    rotation = u @ torch.diag(signs) @ vh
    scale = (singular * signs).sum() / variance if with_scale else source.new_tensor(1.0)
    return scale, rotation, mean_t - scale * rotation @ mean_s


def _check_viewmats(pred: torch.Tensor, target: torch.Tensor) -> None:
    for name, poses in (("pred", pred), ("target", target)):
        if not isinstance(poses, torch.Tensor) or poses.ndim != 3 or poses.shape[1:] != (4, 4):
            raise ValueError(f"{name}: expected (T, 4, 4) viewmats, got {tuple(getattr(poses, 'shape', ()))}")
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in length")


def _alignment(pred_centres: torch.Tensor, target_centres: torch.Tensor, align: str
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sim(3)/SE(3)/identity taking (T, 3) predicted camera centres onto the true ones."""
    if align not in ALIGN_MODES:
        raise ValueError(f"align: expected one of {ALIGN_MODES}, got {align!r}")
    if align == "none":
        eye = torch.eye(3, dtype=pred_centres.dtype, device=pred_centres.device)
        return pred_centres.new_tensor(1.0), eye, pred_centres.new_zeros(3)
    return umeyama(pred_centres, target_centres, with_scale=align == "sim3")


def absolute_trajectory_error(pred: torch.Tensor, target: torch.Tensor, align: str = "sim3") -> torch.Tensor:
    """RMSE between aligned predicted camera centres and true ones.

    Args:
        pred: (T, 4, 4) predicted world-to-camera matrices.
        target: (T, 4, 4) true world-to-camera matrices.
        align: ``sim3`` (default), ``se3`` or ``none``.

    Returns:
        0-dim float64 tensor, in the target's units.
    """
    _check_viewmats(pred, target)
    pred_centres = torch.linalg.inv(pred.double())[:, :3, 3]
    target_centres = torch.linalg.inv(target.double())[:, :3, 3]
    scale, rotation, translation = _alignment(pred_centres, target_centres, align)
    aligned = scale * pred_centres @ rotation.T + translation
    return (aligned - target_centres).square().sum(dim=1).mean().sqrt()


def relative_pose_error(pred: torch.Tensor, target: torch.Tensor, delta: int = 1, align: str = "sim3"
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """RMSE of the relative motion error between frames ``i`` and ``i + delta``.

    For camera-to-world poses ``P`` (predicted, translations scaled by the alignment's scale) and ``Q`` (true), the
    error of pair ``(i, j)`` is ``E = (Q_i^-1 Q_j)^-1 (P_i^-1 P_j)``; its translation norm and rotation angle are
    accumulated.

    Args:
        pred: (T, 4, 4) predicted world-to-camera matrices.
        target: (T, 4, 4) true world-to-camera matrices.
        delta: frame gap, 1 <= delta < T.
        align: alignment whose scale is applied (``sim3``); ``se3``/``none`` use scale 1.

    Returns:
        ``(translation_rmse, rotation_rmse_degrees)``, 0-dim float64 tensors.
    """
    _check_viewmats(pred, target)
    if not 1 <= delta < pred.shape[0]:
        raise ValueError(f"delta: expected 1 <= delta < T = {pred.shape[0]}, got {delta}")
    pred_c2w, target_c2w = torch.linalg.inv(pred.double()), torch.linalg.inv(target.double())
    scale, _, _ = _alignment(pred_c2w[:, :3, 3], target_c2w[:, :3, 3], align)
    pred_c2w[:, :3, 3] *= scale
    pred_rel = torch.linalg.inv(pred_c2w[:-delta]) @ pred_c2w[delta:]
    target_rel = torch.linalg.inv(target_c2w[:-delta]) @ target_c2w[delta:]
    error = torch.linalg.inv(target_rel) @ pred_rel
    translation = error[:, :3, 3].norm(dim=1)
    angle = rotation_matrix_to_axis_angle(error[:, :3, :3]).norm(dim=1)
    return translation.square().mean().sqrt(), torch.rad2deg(angle.square().mean().sqrt())
