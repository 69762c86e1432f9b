"""Non-rigid deformation by a HexPlane field (HexPlane / K-Planes factorisation, as 4DGS and DreamScene4D use).

A canonical point ``x`` at normalised time ``t`` is mapped into the object's bounding box,
``u = 2 (x - lo) / (hi - lo) - 1`` and ``s = 2 t - 1`` (both in [-1, 1]). At each resolution level six feature
planes, one per pair of the axes (x, y, z, t), are sampled bilinearly at the matching pair of coordinates and
their C-channel features multiplied elementwise (a Hadamard product). The levels' features, concatenated, go
through a small MLP whose six outputs are a position offset, in units of half the box's largest side, and an
axis-angle rotation composed on the left of the Gaussian's quaternion. The MLP's last layer starts at zero, so
the field starts as the identity; bilinear sampling makes it continuous in space and in time.

A plane over axes ``(a, b)`` is a (C, R_b, R_a) tensor: its columns run along ``a``, its rows along ``b``, and
with ``align_corners=True`` the first and last samples sit exactly at -1 and 1. Time planes have ``R_t`` rows,
so their sample ``j`` is at normalised time ``j / (R_t - 1)``. Outside the box the border features are used.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from kornia.geometry.conversions import axis_angle_to_quaternion
from torch import nn

from scene4d.conventions import quat_multiply

PLANE_AXES = {"xy": (0, 1), "xz": (0, 2), "yz": (1, 2), "xt": (0, 3), "yt": (1, 3), "zt": (2, 3)}
"""The six planes of a level, in storage order: the pair of axes (column axis, row axis), 3 being time."""
SPACE_INIT = (0.1, 0.5)
"""Spatial features start uniform in this range, time features at 1: the product starts static in time."""


def sample_plane(plane: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of a feature plane.

    Args:
        plane: (C, H, W) features.
        coords: (..., 2) positions ``(along W, along H)`` in [-1, 1]; -1 and 1 are the centres of the first and
            last samples; positions outside take the border's features.

    Returns:
        (..., C) features.
    """
    grid = coords.reshape(1, 1, -1, 2)
    sampled = torch.nn.functional.grid_sample(plane[None], grid, mode="bilinear", padding_mode="border",
                                              align_corners=True)
    return sampled[0, :, 0].T.reshape(*coords.shape[:-1], plane.shape[0])


def hexplane_features(planes: Sequence[torch.Tensor], points: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Hadamard product of one level's six plane features.

    Args:
        planes: six planes in :data:`PLANE_AXES` order, (C, R_b, R_a) each.
        points: (N, 3) positions in the box's [-1, 1] coordinates.
        times: (B,) times in [-1, 1].

    Returns:
        (B, N, C) features.
    """
    coords = torch.cat([points[None].expand(times.shape[0], -1, -1),
                        times[:, None, None].expand(-1, points.shape[0], 1)], dim=-1)
    space = time = 1.0
    for plane, (a, b) in zip(planes, PLANE_AXES.values()):
        if b == 3:
            time = time * sample_plane(plane, coords[..., [a, b]])
        else:  # sampled once per point, not once per time
            space = space * sample_plane(plane, points[:, [a, b]])
    return space * time


class HexPlaneDeformation(nn.Module):
    """Feature planes over space and time decoded into a per-point offset and rotation (module docstring).

    Args:
        bounds: (2, 3) the canonical box's lower and upper corners (stored as a buffer).
        resolutions: samples along each spatial axis of the planes, one entry per level.
        time_resolution: samples along the time axis of the time planes (>= 2).
        channels: features per plane.
        hidden: width of the decoder's two hidden layers.
        seed: seeds the initial spatial features.

    Example::

        field = HexPlaneDeformation(torch.tensor([[-1.0, -1, -1], [1, 1, 1]]), [8, 16], 5)
        means, quats = field(points, quats, torch.tensor([0.0, 0.5]))  # (2, N, 3), (2, N, 4)
    """

    def __init__(self, bounds: torch.Tensor, resolutions: Sequence[int], time_resolution: int, channels: int = 16,
                 hidden: int = 64, seed: int = 0):
        super().__init__()
        if bounds.shape != (2, 3) or not (bounds[1] > bounds[0]).all():
            raise ValueError(f"bounds: expected (2, 3) lower and upper corners, lower < upper; got shape "
                             f"{tuple(bounds.shape)}: {bounds.tolist()}")
        if time_resolution < 2 or not resolutions or min(resolutions) < 2:
            raise ValueError(f"resolutions must be >= 2, got {list(resolutions)} and time {time_resolution}")
        self.resolutions, self.time_resolution = [int(r) for r in resolutions], int(time_resolution)
        self.channels, self.hidden = channels, hidden
        self.register_buffer("bounds", bounds.clone())
        generator = torch.Generator().manual_seed(seed)
        planes = []
        for resolution in self.resolutions:
            for _, b in PLANE_AXES.values():
                rows = self.time_resolution if b == 3 else resolution
                plane = torch.ones(channels, rows, resolution)
                if b != 3:
                    plane.uniform_(*SPACE_INIT, generator=generator)
                planes.append(nn.Parameter(plane.to(bounds)))
        self.planes = nn.ParameterList(planes)
        self.decoder = nn.Sequential(nn.Linear(channels * len(self.resolutions), hidden), nn.ReLU(),
                                     nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 6)).to(bounds)
        nn.init.zeros_(self.decoder[-1].weight)
        nn.init.zeros_(self.decoder[-1].bias)

    def level_planes(self, level: int) -> list[torch.Tensor]:
        """The six planes of one level, in :data:`PLANE_AXES` order."""
        # Indexed one by one: a slice builds a new ParameterList, which would turn the plain tensors that
        # torch.func.functional_call swaps in into new leaf Parameters, cut off from the caller's graph.
        return [self.planes[i] for i in range(6 * level, 6 * level + 6)]

    @property
    def space_planes(self) -> list[torch.Tensor]:
        """Every (C, R, R) plane over two spatial axes (xy, xz, yz of each level)."""
        return [p for level in range(len(self.resolutions)) for p in self.level_planes(level)[:3]]

    @property
    def time_planes(self) -> list[torch.Tensor]:
        """Every (C, R_t, R) plane over a spatial axis and time (xt, yt, zt of each level); time along dim -2."""
        return [p for level in range(len(self.resolutions)) for p in self.level_planes(level)[3:]]

    @property
    def offset_unit(self) -> torch.Tensor:
        """() half the box's largest side: the unit of the decoded offsets."""
        return (self.bounds[1] - self.bounds[0]).max() / 2.0

    def features(self, points: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """(B, N, C * levels) features of canonical ``points`` (N, 3) at normalised ``times`` (B,)."""
        lower, upper = self.bounds
        unit = 2.0 * (points - lower) / (upper - lower) - 1.0
        signed_times = 2.0 * times.to(points.dtype) - 1.0
        return torch.cat([hexplane_features(self.level_planes(level), unit, signed_times)
                          for level in range(len(self.resolutions))], dim=-1)

    def forward(self, points: torch.Tensor, quats: torch.Tensor, times: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Deform canonical ``points`` (N, 3) and ``quats`` (N, 4) to times (B,): returns (B, N, 3), (B, N, 4)."""
        decoded = self.decoder(self.features(points, times))
        means = points[None] + self.offset_unit * decoded[..., :3]
        return means, quat_multiply(axis_angle_to_quaternion(decoded[..., 3:]), quats[None])
