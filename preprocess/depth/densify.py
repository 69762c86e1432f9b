"""Spreading sparse depth samples over a frame, guided by the image's edges.

The dense map minimises ``sum_i w_i (x(p_i) - v_i)^2 + smoothness * sum_(p,q) a_pq (x_p - x_q)^2`` over a 4-connected
grid at a reduced resolution, where ``a_pq = exp(-|I_p - I_q|^2 / (2 edge_sigma^2))`` lets values change across
colour edges and keeps them level elsewhere (Levin et al.'s colourisation energy). Samples enter the grid by
bilinear splatting, each share scaled by the colour affinity of its cell to the sample's own, so they do not leak
across edges either. The quantity spread is inverse depth, which is an affine function of the pixel on a plane,
so a densely sampled plane is reproduced.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.sparse import coo_matrix, diags
from scipy.sparse.linalg import spsolve


def _splat(points: np.ndarray, values: np.ndarray, height: int, width: int, guide: np.ndarray | None = None,
           edge_sigma: float = 1.0) -> np.ndarray:
    """Bilinear splatting of (M,) values at (M, 2) continuous pixel points onto an (H, W) grid (sums).

    With an (H, W, 3) ``guide``, each of the four shares is scaled by the colour affinity between that cell and the
    cell holding the point, so samples do not leak across colour edges.
    """
    x = points[:, 0] - 0.5
    y = points[:, 1] - 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    if guide is not None:
        own = guide[np.clip(points[:, 1].astype(np.int64), 0, height - 1),
                    np.clip(points[:, 0].astype(np.int64), 0, width - 1)]
    grid = np.zeros((height, width), dtype=np.float64)
    for dx, dy, share in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        cols, rows = np.clip(x0 + dx, 0, width - 1), np.clip(y0 + dy, 0, height - 1)
        if guide is not None:
            share = share * np.exp(-((guide[rows, cols] - own) ** 2).sum(axis=-1) / (2 * edge_sigma ** 2))
        np.add.at(grid, (rows, cols), share * values)
    return grid


def _edge_laplacian(image: np.ndarray, edge_sigma: float):
    """Sparse weighted graph Laplacian (H*W, H*W) of the 4-connected grid of an (H, W, 3) float image."""
    height, width = image.shape[:2]
    index = np.arange(height * width).reshape(height, width)
    weights = []
    for a, b in ((image[:, :-1], image[:, 1:]), (image[:-1], image[1:])):
        difference = ((a - b) ** 2).sum(axis=-1)
        weights.append(np.exp(-difference / (2 * edge_sigma ** 2)).ravel())
    pairs = [(index[:, :-1].ravel(), index[:, 1:].ravel()), (index[:-1].ravel(), index[1:].ravel())]
    first = np.concatenate([p[0] for p in pairs])
    second = np.concatenate([p[1] for p in pairs])
    weight = np.concatenate(weights)
    size = height * width
    adjacency = coo_matrix((np.r_[weight, weight], (np.r_[first, second], np.r_[second, first])), shape=(size, size))
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    return diags(degree) - adjacency.tocsr()


def densify(image: np.ndarray, points: np.ndarray, values: np.ndarray, weights: np.ndarray, long_side: int,
            smoothness: float, edge_sigma: float) -> np.ndarray:
    """Dense map from sparse samples, edge-aware, solved at reduced resolution and upsampled bilinearly.

    Args:
        image: (H, W, 3) uint8 RGB guide.
        points: (M, 2) sample positions in pixel coordinates (centres at +0.5), M >= 1.
        values: (M,) sample values.
        weights: (M,) positive sample weights.
        long_side: the solve's grid has this many cells along the longer image side (at most the image's).
        smoothness: weight of the smoothness term.
        edge_sigma: colour difference (0-255 units) at which a neighbour's coupling falls to exp(-1/2).

    Returns:
        (H, W) float32 dense values.
    """
    if len(points) == 0:
        raise ValueError("densify: no samples")
    height, width = image.shape[:2]
    small_w, small_h = _grid_size(width, height, long_side)
    guide = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA).astype(np.float64)
    small_points = points * np.array([small_w / width, small_h / height])
    data_weight = _splat(small_points, weights, small_h, small_w, guide, edge_sigma)
    data_value = _splat(small_points, weights * values, small_h, small_w, guide, edge_sigma)

    laplacian = _edge_laplacian(guide, edge_sigma)
    # A tiny pull towards the weighted mean keeps the system regular where a region has no samples at all.
    mean = float(np.sum(weights * values) / np.sum(weights))
    epsilon = 1e-6
    system = diags(data_weight.ravel() + epsilon) + smoothness * laplacian
    solution = spsolve(system.tocsc(), data_value.ravel() + epsilon * mean).reshape(small_h, small_w)
    return cv2.resize(solution.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def sample_support(points: np.ndarray, weights: np.ndarray, height: int, width: int, radius: float) -> np.ndarray:
    """Gaussian-weighted sum of sample weights around every pixel (about the weight within ``radius`` pixels).

    Args:
        points: (M, 2) pixel positions.
        weights: (M,) weights.
        height, width: image size.
        radius: Gaussian standard deviation in pixels.

    Returns:
        (H, W) float32.
    """
    grid = _splat(points, weights, height, width).astype(np.float32)
    # Normalised so a uniform density of one sample per pixel maps to the count inside a disc of this radius.
    blurred = cv2.GaussianBlur(grid, (0, 0), radius) * (np.pi * radius ** 2)
    return blurred


def _grid_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    scale = min(1.0, long_side / max(height, width))
    return max(2, round(width * scale)), max(2, round(height * scale))
