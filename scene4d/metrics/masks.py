"""Segmentation accuracy: mask IoU (the DAVIS J measure) and per-object matching by the Hungarian method.

Masks are bool tensors; a video object is ``(T, H, W)`` and a set of objects ``(O, T, H, W)``. Object ids of a
prediction need not agree with the ground truth's: :func:`match_objects` pairs them to maximise total IoU.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment


def _check_masks(name: str, masks: torch.Tensor, ndim: int) -> None:
    if not isinstance(masks, torch.Tensor) or masks.dtype != torch.bool:
        raise TypeError(f"{name}: expected a bool torch.Tensor, got {getattr(masks, 'dtype', type(masks).__name__)}")
    if masks.ndim < ndim:
        raise ValueError(f"{name}: expected at least {ndim} dimensions, got {tuple(masks.shape)}")


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Intersection over union of each mask pair; 1 where both masks are empty (DAVIS convention).

    Args:
        pred: (..., H, W) bool.
        target: (..., H, W) bool, same shape.

    Returns:
        (...) float32 IoU per leading index (0-dim for a single (H, W) pair).
    """
    _check_masks("pred", pred, 2)
    _check_masks("target", target, 2)
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    intersection = (pred & target).sum(dim=(-2, -1)).float()
    union = (pred | target).sum(dim=(-2, -1)).float()
    return torch.where(union > 0, intersection / union.clamp(min=1), 1.0)


def object_iou_matrix(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-frame IoU of every predicted object against every true object.

    Args:
        pred: (P, T, H, W) bool.
        target: (G, T, H, W) bool.

    Returns:
        (P, G) float32.
    """
    _check_masks("pred", pred, 4)
    _check_masks("target", target, 4)
    if pred.ndim != 4 or target.ndim != 4 or pred.shape[1:] != target.shape[1:]:
        raise ValueError(f"pred (P, T, H, W) and target (G, T, H, W) must agree in T, H, W: got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    p = pred.flatten(2).float()
    g = target.flatten(2).float()
    intersection = torch.einsum("ptk,gtk->pgt", p, g)
    union = p.sum(dim=2)[:, None] + g.sum(dim=2)[None] - intersection
    return torch.where(union > 0, intersection / union.clamp(min=1), 1.0).mean(dim=2)


def match_objects(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One-to-one assignment of predicted to true objects maximising the summed IoU.

    Args:
        pred: (P, T, H, W) bool predicted objects, in any order.
        target: (G, T, H, W) bool true objects.

    Returns:
        ``(assignment, iou)``: (G,) int64 index of the predicted object matched to each true one (-1 when there
        are fewer predictions than true objects) and (G,) float32 its IoU (0 when unmatched). ``iou.mean()`` is
        the clip's J score.
    """
    matrix = object_iou_matrix(pred, target)
    rows, cols = linear_sum_assignment(matrix.cpu().numpy(), maximize=True)
    assignment = torch.full((target.shape[0],), -1, dtype=torch.int64)
    iou = torch.zeros(target.shape[0])
    assignment[cols] = torch.as_tensor(rows, dtype=torch.int64)
    iou[cols] = matrix[rows, cols].cpu()
    return assignment, iou
