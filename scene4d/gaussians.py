"""A set of 3D Gaussians: raw trainable parameters plus per-Gaussian metadata that must follow them.

``params`` is an ``nn.ParameterDict`` holding the *raw* (unactivated) parameters under gsplat's names, so
it can be handed to gsplat's densification strategies and to one optimizer per entry:

========== ============= ==============================================
name       shape         meaning
========== ============= ==============================================
means      (N, 3)        world centres
quats      (N, 4)        wxyz rotations, not necessarily unit length
scales     (N, 3)        log standard deviations
opacities  (N,)          opacity logits
sh0        (N, 1, 3)     degree-0 SH coefficient per colour channel
shN        (N, K - 1, 3) higher SH coefficients, K = (sh_degree + 1)**2
========== ============= ==============================================

``meta`` is a plain dict of non-trainable tensors whose first dimension is N (for example ``object_ids``
(N,) long, or skinning weights (N, P)). Whatever clones, splits, prunes, selects or concatenates Gaussians
keeps every ``meta`` row attached to its Gaussian (see :mod:`scene4d.densify`).

The getters return the activated values :func:`scene4d.render.render.render` takes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn

from scene4d.render.sh import num_sh_bases, rgb_to_sh0

PARAM_NAMES = ("means", "quats", "scales", "opacities", "sh0", "shN")


def sh_degree_from_bases(num_bases: int) -> int:
    """Inverse of ``num_sh_bases``: the degree d with ``(d + 1)**2 == num_bases``, checked to be 0..3."""
    degree = math.isqrt(num_bases) - 1
    if num_bases < 1 or (degree + 1) ** 2 != num_bases or degree > 3:
        raise ValueError(f"{num_bases} SH coefficients per channel is not (d + 1)**2 for a degree d in 0..3")
    return degree


def knn_scales(points: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Root-mean-square distance of each point to its ``k`` nearest others (the usual 3DGS initial scale).

    Args:
        points: (N, 3) with N > k.
        k: number of neighbours.

    Returns:
        (N,) distances, clamped away from 0 so their log is finite.
    """
    if points.dim() != 2 or points.shape[1] != 3:
        raise ValueError(f"points: expected (N, 3), got {tuple(points.shape)}")
    if points.shape[0] <= k:
        raise ValueError(f"knn_scales needs more than k={k} points, got {points.shape[0]}; pass scale= instead")
    tree = cKDTree(points.detach().cpu().double().numpy())
    dists, _ = tree.query(tree.data, k=k + 1)  # the first neighbour is the point itself
    mean = np.sqrt((dists[:, 1:] ** 2).mean(axis=1))
    return torch.from_numpy(mean).to(points.device, torch.float32).clamp_min(1e-7)


class Gaussians:
    """Raw Gaussian parameters (``params``) and per-Gaussian metadata (``meta``); see the module docstring.

    Args:
        params: mapping with exactly the names of :data:`PARAM_NAMES` and the shapes listed above.
        meta: tensors whose first dimension is N; never trained.
    """

    def __init__(self, params: Mapping[str, torch.Tensor], meta: Mapping[str, torch.Tensor] | None = None):
        self.params = nn.ParameterDict(
            {k: v if isinstance(v, nn.Parameter) else nn.Parameter(v) for k, v in params.items()}
        )
        self.meta = dict(meta or {})
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first parameter or metadata entry with a wrong shape."""
        names = set(self.params.keys())
        if names != set(PARAM_NAMES):
            raise ValueError(f"params: expected keys {sorted(PARAM_NAMES)}, got {sorted(names)}")
        n = self.params["means"].shape[0]
        expected = {"means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,), "sh0": (n, 1, 3)}
        for name, shape in expected.items():
            if tuple(self.params[name].shape) != shape:
                raise ValueError(f"{name}: expected {shape}, got {tuple(self.params[name].shape)}")
        sh_n = self.params["shN"]
        if sh_n.dim() != 3 or sh_n.shape[0] != n or sh_n.shape[2] != 3 or sh_n.shape[1] + 1 not in (1, 4, 9, 16):
            raise ValueError(f"shN: expected ({n}, K - 1, 3) with K = (sh_degree + 1)**2 <= 16, got {tuple(sh_n.shape)}")
        for name, value in self.meta.items():
            if name in PARAM_NAMES:
                raise ValueError(f"meta: {name!r} is a parameter name")
            if value.dim() == 0 or value.shape[0] != n:
                raise ValueError(f"meta[{name!r}]: expected first dimension {n}, got {tuple(value.shape)}")

    @classmethod
    def from_points(
        cls,
        points: torch.Tensor,
        rgb: torch.Tensor,
        sh_degree: int = 3,
        scale: float | torch.Tensor | None = None,
        opacity: float = 0.1,
        meta: Mapping[str, torch.Tensor] | None = None,
    ) -> Gaussians:
        """Isotropic, axis-aligned Gaussians at ``points`` with view-independent colour ``rgb``.

        Args:
            points: (N, 3) centres.
            rgb: (N, 3) colours in [0, 1].
            sh_degree: 0..3; the higher coefficients start at 0.
            scale: standard deviation, a float or (N,); None for :func:`knn_scales` of the points.
            opacity: initial opacity in (0, 1).
            meta: per-Gaussian metadata, first dimension N.

        Returns:
            float32 :class:`Gaussians` on the device of ``points``.
        """
        if points.dim() != 2 or points.shape[1] != 3:
            raise ValueError(f"points: expected (N, 3), got {tuple(points.shape)}")
        n = points.shape[0]
        if rgb.shape != (n, 3):
            raise ValueError(f"rgb: expected ({n}, 3), got {tuple(rgb.shape)}")
        if not 0 <= sh_degree <= 3:
            raise ValueError(f"sh_degree must be in 0..3, got {sh_degree}")
        if not 0.0 < opacity < 1.0:
            raise ValueError(f"opacity must be in (0, 1), got {opacity}")
        device, dtype = points.device, torch.float32
        sigma = knn_scales(points) if scale is None else torch.as_tensor(scale, dtype=dtype, device=device)
        if sigma.dim() > 1 or (sigma.dim() == 1 and sigma.shape[0] != n) or bool((sigma <= 0).any()):
            raise ValueError(f"scale: expected a positive float or ({n},), got {tuple(sigma.shape)}")
        quats = torch.zeros(n, 4, dtype=dtype, device=device)
        quats[:, 0] = 1.0
        params = {
            "means": points.detach().to(dtype).clone(),
            "quats": quats,
            "scales": torch.log(sigma).expand(n).to(dtype)[:, None].repeat(1, 3),
            "opacities": torch.full((n,), math.log(opacity / (1.0 - opacity)), dtype=dtype, device=device),
            "sh0": rgb_to_sh0(rgb.detach().to(dtype))[:, None, :].clone(),
            "shN": torch.zeros(n, num_sh_bases(sh_degree) - 1, 3, dtype=dtype, device=device),
        }
        return cls(params, meta)

    @property
    def num_gaussians(self) -> int:
        return self.params["means"].shape[0]

    @property
    def sh_degree(self) -> int:
        """Highest SH degree stored (0..3)."""
        return sh_degree_from_bases(self.params["shN"].shape[1] + 1)

    @property
    def device(self) -> torch.device:
        return self.params["means"].device

    def get_means(self) -> torch.Tensor:
        """(N, 3) centres."""
        return self.params["means"]

    def get_quats(self) -> torch.Tensor:
        """(N, 4) unit wxyz quaternions."""
        return nn.functional.normalize(self.params["quats"], dim=-1)

    def get_scales(self) -> torch.Tensor:
        """(N, 3) standard deviations, ``exp`` of the raw log-scales."""
        return torch.exp(self.params["scales"])

    def get_opacities(self) -> torch.Tensor:
        """(N,) opacities in (0, 1), ``sigmoid`` of the raw logits."""
        return torch.sigmoid(self.params["opacities"])

    def colors(self) -> torch.Tensor:
        """(N, K, 3) SH coefficients, K = (sh_degree + 1)**2, for ``render(..., sh_degree=...)``."""
        return torch.cat([self.params["sh0"], self.params["shN"]], dim=1)

    def _map(self, fn) -> Gaussians:
        """New Gaussians with ``fn`` applied to every tensor; parameters become new leaves."""
        params = {k: nn.Parameter(fn(v.detach()), requires_grad=v.requires_grad) for k, v in self.params.items()}
        return Gaussians(params, {k: fn(v) for k, v in self.meta.items()})

    def to(self, device: torch.device | str) -> Gaussians:
        """A copy on ``device`` (optimizers must be rebuilt for it)."""
        return self._map(lambda t: t.to(device, copy=True))

    def select(self, index: torch.Tensor) -> Gaussians:
        """The Gaussians picked by a (N,) bool mask or a (M,) long index, metadata included, as new leaves."""
        if index.dtype == torch.bool and index.shape != (self.num_gaussians,):
            raise ValueError(f"mask: expected ({self.num_gaussians},) bool, got {tuple(index.shape)}")
        if index.dtype not in (torch.bool, torch.long, torch.int32):
            raise ValueError(f"index: expected a bool mask or an integer index, got {index.dtype}")
        return self._map(lambda t: t[index.to(t.device)])

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{"params": {name: tensor}, "meta": {name: tensor}}``, detached, for ``torch.save``."""
        return {
            "params": {k: v.detach() for k, v in self.params.items()},
            "meta": {k: v.detach() for k, v in self.meta.items()},
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Mapping[str, torch.Tensor]]) -> Gaussians:
        """Inverse of :meth:`state_dict`."""
        if set(state.keys()) != {"params", "meta"}:
            raise ValueError(f"state: expected keys ['meta', 'params'], got {sorted(state.keys())}")
        return cls({k: v.clone() for k, v in state["params"].items()}, {k: v.clone() for k, v in state["meta"].items()})

    @classmethod
    def cat(cls, parts: Sequence[Gaussians]) -> Gaussians:
        """Concatenate Gaussians with the same SH degree and the same metadata names, in order."""
        if len(parts) == 0:
            raise ValueError("cat: expected at least one Gaussians, got none")
        degrees = [g.sh_degree for g in parts]
        if len(set(degrees)) != 1:
            raise ValueError(f"cat: all parts need the same sh_degree, got {degrees}")
        meta_names = [sorted(g.meta) for g in parts]
        if any(names != meta_names[0] for names in meta_names):
            raise ValueError(f"cat: all parts need the same meta names, got {meta_names}")
        params = {k: torch.cat([g.params[k].detach() for g in parts]) for k in PARAM_NAMES}
        meta = {k: torch.cat([g.meta[k] for g in parts]) for k in meta_names[0]}
        return cls(params, meta)

    def __repr__(self) -> str:
        return f"Gaussians(num_gaussians={self.num_gaussians}, sh_degree={self.sh_degree}, meta={sorted(self.meta)})"
