"""Uniform cubic B-splines over normalised time: smooth (C2) curves evaluable at any t in [0, 1]."""

from __future__ import annotations

import math

import torch


def num_knots_for(num_frames: int, knots_per_frame: float, minimum: int = 4) -> int:
    """How many spline control values to use for a clip: ``max(minimum, ceil(T * knots_per_frame))``."""
    return max(minimum, math.ceil(num_frames * knots_per_frame))


def bspline_basis(times: torch.Tensor, num_knots: int) -> torch.Tensor:
    """Weights of each control value at each time, for a uniform cubic B-spline spanning [0, 1].

    The curve ``basis @ values`` is twice continuously differentiable in t; each time depends on four
    neighbouring control values and the weights sum to 1 (so a constant curve stays constant).

    Args:
        times: (B,) normalised times in [0, 1] (clamped).
        num_knots: number of control values, >= 4.

    Returns:
        (B, num_knots) weights.
    """
    if num_knots < 4:
        raise ValueError(f"num_knots must be >= 4, got {num_knots}")
    segments = num_knots - 3
    s = torch.clamp(times, 0.0, 1.0) * segments
    index = torch.clamp(torch.floor(s), max=segments - 1)
    u = (s - index)[:, None]
    weights = torch.cat(
        [(1 - u) ** 3, 3 * u**3 - 6 * u**2 + 4, -3 * u**3 + 3 * u**2 + 3 * u + 1, u**3], dim=1
    ) / 6.0
    columns = index.long()[:, None] + torch.arange(4, device=times.device)
    basis = torch.zeros(times.shape[0], num_knots, dtype=times.dtype, device=times.device)
    return basis.scatter(1, columns, weights)


def evaluate(values: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Evaluate spline curves.

    Args:
        values: (K, ...) control values (any trailing shape).
        times: (B,) normalised times.

    Returns:
        (B, ...) curve values.
    """
    basis = bspline_basis(times.to(values.dtype), values.shape[0])
    return torch.einsum("bk,k...->b...", basis, values)


def fit_values(samples: torch.Tensor, times: torch.Tensor, num_knots: int, smoothness: float = 1e-3) -> torch.Tensor:
    """Least-squares control values whose curve passes near ``samples`` at ``times``.

    Args:
        samples: (B, ...) observed values.
        times: (B,) their normalised times.
        num_knots: number of control values.
        smoothness: weight of a second-difference penalty on the control values (keeps gaps smooth).

    Returns:
        (num_knots, ...) control values.
    """
    basis = bspline_basis(times.to(samples.dtype), num_knots)
    second_diff = torch.diff(torch.eye(num_knots, dtype=samples.dtype, device=samples.device), n=2, dim=0)
    system = basis.T @ basis + smoothness * second_diff.T @ second_diff
    flat = samples.reshape(samples.shape[0], -1)
    solution = torch.linalg.solve(system, basis.T @ flat)
    return solution.reshape(num_knots, *samples.shape[1:])
