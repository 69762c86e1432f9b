import math

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from scene4d.errors import InputError
from scene4d.gaussians import Gaussians
from scene4d.ply import load_ply, ply_property_names, save_ply


def _random(n, sh_degree, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    return Gaussians({"means": torch.randn(n, 3, generator=g), "quats": torch.randn(n, 4, generator=g),
                      "scales": torch.randn(n, 3, generator=g), "opacities": torch.randn(n, generator=g),
                      "sh0": torch.randn(n, 1, 3, generator=g), "shN": torch.randn(n, k - 1, 3, generator=g)},
                     meta={"object_ids": torch.zeros(n, dtype=torch.long)})


@pytest.mark.parametrize("n,sh_degree", [(50, 0), (50, 1), (50, 2), (50, 3), (0, 1)])
def test_round_trip_is_exact(tmp_path, n, sh_degree):
    g = _random(n, sh_degree)
    save_ply(tmp_path / "scene.ply", g)
    h = load_ply(tmp_path / "scene.ply")
    assert h.sh_degree == sh_degree and h.meta == {}
    for k, v in g.params.items():
        assert h.params[k].dtype == torch.float32
        assert torch.equal(h.params[k], v.detach()), k


def test_on_disk_layout_matches_hand_built_example(tmp_path):
    # Two Gaussians, SH degree 1 (K = 4): shN[n, k, c] = 100 n + 10 (k + 1) + c, so f_rest_i must hold
    # channel c = i // 3, coefficient k = i % 3 (all red coefficients first, then green, then blue).
    shN = torch.tensor([[[100 * n + 10 * (k + 1) + c for c in range(3)] for k in range(3)] for n in range(2)],
                       dtype=torch.float32)
    g = Gaussians({
        "means": torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),
        "quats": torch.tensor([[0.9, 0.1, 0.2, 0.3], [0.5, -0.5, 0.5, -0.5]]),
        "scales": torch.log(torch.tensor([[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]])),
        "opacities": torch.tensor([0.0, 2.0]),
        "sh0": torch.tensor([[[0.5, 0.6, 0.7]], [[-0.5, -0.6, -0.7]]]),
        "shN": shN,
    })
    path = tmp_path / "tiny.ply"
    save_ply(path, g)
    assert path.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\nelement vertex 2\n")
    ply = PlyData.read(str(path))
    assert [e.name for e in ply.elements] == ["vertex"]
    vertex = ply["vertex"]
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(9)] + [
        "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert [p.name for p in vertex.properties] == names == ply_property_names(1)
    assert vertex.data.dtype == np.dtype([(n, "<f4") for n in names])
    row = vertex.data[1]
    assert (row["x"], row["y"], row["z"]) == (4.0, 5.0, 6.0)
    assert (row["nx"], row["ny"], row["nz"]) == (0.0, 0.0, 0.0)
    assert [row[f"f_dc_{i}"] for i in range(3)] == pytest.approx([-0.5, -0.6, -0.7])
    assert [row[f"f_rest_{i}"] for i in range(9)] == [110, 120, 130, 111, 121, 131, 112, 122, 132]
    assert row["opacity"] == 2.0
    assert [row[f"scale_{i}"] for i in range(3)] == pytest.approx([0.0, math.log(2), math.log(3)])
    assert [row[f"rot_{i}"] for i in range(4)] == [0.5, -0.5, 0.5, -0.5]  # w first, as stored


def test_loads_gsplat_export_exactly(tmp_path):
    # gsplat's own writer (no normals) is an independent reference for the channel-major f_rest layout.
    from gsplat.exporter import export_splats

    g = _random(9, 3)
    p = {k: v.detach() for k, v in g.params.items()}
    export_splats(p["means"], p["scales"], p["quats"], p["opacities"], p["sh0"], p["shN"],
                  save_to=str(tmp_path / "gsplat.ply"))
    h = load_ply(tmp_path / "gsplat.ply")
    for k, v in p.items():
        assert torch.equal(h.params[k], v), k


def test_load_finds_properties_by_name_and_tolerates_missing_normals(tmp_path):
    g = _random(7, 2)
    save_ply(tmp_path / "a.ply", g)
    data = PlyData.read(str(tmp_path / "a.ply"))["vertex"].data
    kept = [n for n in reversed(data.dtype.names) if n not in ("nx", "ny", "nz")]
    shuffled = np.empty(len(data), dtype=[(n, "<f4") for n in kept])
    for n in kept:
        shuffled[n] = data[n]
    PlyData([PlyElement.describe(shuffled, "vertex")]).write(str(tmp_path / "b.ply"))
    h = load_ply(tmp_path / "b.ply")
    for k, v in g.params.items():
        assert torch.equal(h.params[k], v.detach()), k


def test_save_replaces_atomically_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "out" / "scene.ply"
    save_ply(path, _random(3, 0))
    save_ply(path, _random(5, 1, seed=1))
    assert load_ply(path).num_gaussians == 5
    assert [p.name for p in path.parent.iterdir()] == ["scene.ply"]


def test_point_cloud_ply_is_rejected_naming_missing_properties(tmp_path):
    cloud = np.zeros(4, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    PlyData([PlyElement.describe(cloud, "vertex")]).write(str(tmp_path / "cloud.ply"))
    with pytest.raises(InputError, match="lacks f_dc_0, f_dc_1, f_dc_2, opacity, scale_0, scale_1, scale_2, "
                                          "rot_0, rot_1, rot_2, rot_3$"):
        load_ply(tmp_path / "cloud.ply")


def test_other_malformed_plys_are_rejected(tmp_path):
    faces = np.zeros(1, dtype=[("vertex_indices", "i4", (3,))])
    PlyData([PlyElement.describe(faces, "face")]).write(str(tmp_path / "faces.ply"))
    with pytest.raises(InputError, match="no 'vertex' element"):
        load_ply(tmp_path / "faces.ply")

    g = _random(2, 1)
    save_ply(tmp_path / "g.ply", g)
    data = PlyData.read(str(tmp_path / "g.ply"))["vertex"].data
    names = [n for n in data.dtype.names if n != "f_rest_8"]
    cut = np.empty(2, dtype=[(n, "<f4") for n in names])
    for n in names:
        cut[n] = data[n]
    PlyData([PlyElement.describe(cut, "vertex")]).write(str(tmp_path / "cut.ply"))
    with pytest.raises(InputError, match="8 f_rest_\\* properties"):
        load_ply(tmp_path / "cut.ply")

    renamed = data.copy()
    renamed.dtype.names = [("f_rest_9" if n == "f_rest_0" else n) for n in data.dtype.names]
    PlyData([PlyElement.describe(renamed, "vertex")]).write(str(tmp_path / "gap.ply"))
    with pytest.raises(InputError, match="lacks f_rest_0$"):
        load_ply(tmp_path / "gap.ply")
