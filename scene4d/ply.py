"""Gaussians to and from the standard 3DGS PLY file that common splat viewers open.

One ``vertex`` element, binary little endian, every property float32, in this order (the layout of the
INRIA reference code, which SuperSplat, antimatter15/splat, the INRIA SIBR viewer and gsplat read)::

    x y z  nx ny nz (zeros)  f_dc_0..2  f_rest_0..M-1  opacity (logit)  scale_0..2 (log)  rot_0..3 (wxyz)

``f_rest`` is channel-major: with K = (sh_degree + 1)**2 coefficients per channel, ``f_rest_0..K-2`` are
red's degree >= 1 coefficients, then green's, then blue's, so M = 3 (K - 1). Metadata (``Gaussians.meta``)
is not written: the SIBR viewer reads the file as fixed-size records and extra properties would break it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from scene4d.atomic import write_bytes_atomic
from scene4d.errors import InputError
from scene4d.gaussians import Gaussians

# Normals are written as zeros for the viewers' sake; some exporters leave them out.
_OPTIONAL = {"nx", "ny", "nz"}


def ply_property_names(sh_degree: int) -> list[str]:
    """The property names of a 3DGS PLY vertex with SH of ``sh_degree``, in file order."""
    num_rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(num_rest)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )


def save_ply(path: str | Path, gaussians: Gaussians) -> None:
    """Write ``gaussians`` (raw parameters, no metadata) as a 3DGS PLY, atomically.

    Args:
        path: destination; its folder is created. A reader sees the old file or the complete new one.
        gaussians: any device; written as float32.
    """
    p = {k: v.detach().cpu().float() for k, v in gaussians.params.items()}
    n = gaussians.num_gaussians
    columns = [
        p["means"],
        torch.zeros(n, 3),
        p["sh0"][:, 0, :],
        p["shN"].transpose(1, 2).flatten(1),  # (N, 3, K-1): channel-major
        p["opacities"][:, None],
        p["scales"],
        p["quats"],
    ]
    data = np.ascontiguousarray(torch.cat(columns, dim=1).numpy(), dtype="<f4")
    vertices = data.view([(name, "<f4") for name in ply_property_names(gaussians.sh_degree)]).reshape(n)
    buffer = io.BytesIO()
    PlyData([PlyElement.describe(vertices, "vertex")], text=False, byte_order="<").write(buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_ply(path: str | Path) -> Gaussians:
    """Read a 3DGS PLY written by :func:`save_ply`, the INRIA code, gsplat or a viewer.

    Properties are found by name, so their order in the file does not matter. The SH degree follows from
    the number of ``f_rest_*`` properties.

    Returns:
        float32 :class:`Gaussians` on the CPU with empty ``meta``.

    Raises:
        InputError: the file has no ``vertex`` element, lacks a 3DGS property (named in the message), or
            has an ``f_rest`` count that is no SH degree 0..3.
    """
    ply = PlyData.read(str(path))
    if "vertex" not in ply:
        names = [e.name for e in ply.elements]
        raise InputError(f"{path}: not a 3DGS PLY, it has no 'vertex' element (elements: {names})")
    vertex = ply["vertex"]
    present = {prop.name for prop in vertex.properties}
    num_rest = sum(1 for name in present if name.startswith("f_rest_"))
    degrees = {3 * ((d + 1) ** 2 - 1): d for d in range(4)}
    if num_rest not in degrees:
        raise InputError(f"{path}: {num_rest} f_rest_* properties; a 3DGS PLY has {sorted(degrees)} (SH degree 0..3)")
    missing = [name for name in ply_property_names(degrees[num_rest]) if name not in present | _OPTIONAL]
    if missing:
        raise InputError(f"{path}: not a 3DGS PLY, the vertex element lacks {', '.join(missing)}")

    n = vertex.count

    def column(*names: str) -> torch.Tensor:
        out = np.empty((n, len(names)), dtype=np.float32)
        for i, name in enumerate(names):
            out[:, i] = vertex[name]
        return torch.from_numpy(out)

    rest = column(*[f"f_rest_{i}" for i in range(num_rest)]).reshape(n, 3, num_rest // 3).transpose(1, 2)
    params = {
        "means": column("x", "y", "z"),
        "quats": column("rot_0", "rot_1", "rot_2", "rot_3"),
        "scales": column("scale_0", "scale_1", "scale_2"),
        "opacities": column("opacity")[:, 0],
        "sh0": column("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :],
        "shN": rest.contiguous(),
    }
    return Gaussians(params)
