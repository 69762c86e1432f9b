import io
import math

import pytest
import torch

from scene4d.gaussians import Gaussians, knn_scales, sh_degree_from_bases
from scene4d.render.sh import eval_sh


def _points(n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g), torch.rand(n, 3, generator=g)


def _tagged(n=6, sh_degree=1):
    points, rgb = _points(n)
    meta = {"object_ids": torch.arange(n) * 10, "weights": torch.arange(2 * n, dtype=torch.float32).view(n, 2)}
    return Gaussians.from_points(points, rgb, sh_degree=sh_degree, scale=0.05, meta=meta)


def test_from_points_activations_reproduce_inputs():
    points, rgb = _points()
    g = Gaussians.from_points(points, rgb, sh_degree=2, scale=0.3, opacity=0.25)
    assert g.num_gaussians == 20 and g.sh_degree == 2
    assert g.params["shN"].shape == (20, 8, 3) and g.colors().shape == (20, 9, 3)
    torch.testing.assert_close(g.get_means(), points)
    torch.testing.assert_close(g.get_scales(), torch.full((20, 3), 0.3))
    torch.testing.assert_close(g.get_opacities(), torch.full((20,), 0.25))
    torch.testing.assert_close(g.get_quats(), torch.tensor([1.0, 0, 0, 0]).expand(20, 4))
    # The colour render() shows (SH + 0.5) is the input colour from any direction.
    dirs = torch.randn(20, 3)
    torch.testing.assert_close(eval_sh(2, g.colors(), dirs) + 0.5, rgb)


def test_from_points_degree_zero_has_empty_shN():
    points, rgb = _points(5)
    g = Gaussians.from_points(points, rgb, sh_degree=0, scale=torch.full((5,), 0.1))
    assert g.params["shN"].shape == (5, 0, 3) and g.colors().shape == (5, 1, 3) and g.sh_degree == 0


def test_knn_scales_match_brute_force():
    points, rgb = _points(50)
    d = torch.cdist(points.double(), points.double())
    nearest = d.sort(dim=1).values[:, 1:4]
    expected = nearest.pow(2).mean(dim=1).sqrt().float()
    torch.testing.assert_close(knn_scales(points), expected)
    g = Gaussians.from_points(points, rgb)
    torch.testing.assert_close(g.get_scales(), expected[:, None].expand(50, 3))


def test_getters_are_differentiable_in_raw_parameters():
    g = _tagged()
    (g.get_scales().sum() + g.get_opacities().sum()).backward()
    torch.testing.assert_close(g.params["scales"].grad, torch.exp(g.params["scales"].detach()))
    s = torch.sigmoid(g.params["opacities"].detach())
    torch.testing.assert_close(g.params["opacities"].grad, s * (1 - s))


def test_get_quats_are_unit_and_keep_direction():
    g = _tagged(4)
    raw = torch.randn(4, 4)
    g.params["quats"].data.copy_(raw)
    q = g.get_quats()
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(q * raw.norm(dim=-1, keepdim=True), raw)


@pytest.mark.parametrize("sh_degree", [0, 1, 3])
def test_state_dict_round_trip(sh_degree):
    g = _tagged(sh_degree=sh_degree)
    g.params["shN"].data.normal_()
    buffer = io.BytesIO()
    torch.save(g.state_dict(), buffer)
    buffer.seek(0)
    h = Gaussians.from_state_dict(torch.load(buffer))
    for k in g.params:
        assert torch.equal(g.params[k], h.params[k]) and h.params[k].requires_grad
    for k in g.meta:
        assert torch.equal(g.meta[k], h.meta[k]) and g.meta[k].dtype == h.meta[k].dtype
    assert h.sh_degree == sh_degree


def test_select_keeps_metadata_attached():
    g = _tagged()
    mask = torch.tensor([True, False, True, True, False, False])
    s = g.select(mask)
    assert s.num_gaussians == 3
    assert s.meta["object_ids"].tolist() == [0, 20, 30]
    torch.testing.assert_close(s.params["means"], g.params["means"][mask])
    torch.testing.assert_close(s.meta["weights"], g.meta["weights"][mask])
    picked = g.select(torch.tensor([5, 0, 5]))
    assert picked.meta["object_ids"].tolist() == [50, 0, 50]
    torch.testing.assert_close(picked.params["sh0"], g.params["sh0"][[5, 0, 5]])
    # New leaves: editing the selection leaves the source alone.
    s.params["means"].data.zero_()
    assert g.params["means"].abs().sum() > 0


def test_cat_concatenates_in_order():
    a, b = _tagged(6), _tagged(4)
    b.meta["object_ids"] += 1
    c = Gaussians.cat([a, b])
    assert c.num_gaussians == 10
    assert c.meta["object_ids"].tolist() == a.meta["object_ids"].tolist() + b.meta["object_ids"].tolist()
    torch.testing.assert_close(c.params["quats"], torch.cat([a.params["quats"], b.params["quats"]]))


def test_to_copies():
    g = _tagged()
    h = g.to("cpu")
    h.params["scales"].data.add_(1.0)
    h.meta["object_ids"].add_(1)
    assert not torch.equal(g.params["scales"], h.params["scales"])
    assert g.meta["object_ids"].tolist() == [0, 10, 20, 30, 40, 50]


def test_bad_inputs_say_what_was_received():
    points, rgb = _points(5)
    with pytest.raises(ValueError, match=r"points: expected \(N, 3\), got \(5, 2\)"):
        Gaussians.from_points(points[:, :2], rgb)
    with pytest.raises(ValueError, match=r"rgb: expected \(5, 3\), got \(4, 3\)"):
        Gaussians.from_points(points, rgb[:4], scale=0.1)
    with pytest.raises(ValueError, match="sh_degree must be in 0..3, got 4"):
        Gaussians.from_points(points, rgb, sh_degree=4, scale=0.1)
    with pytest.raises(ValueError, match="scale"):
        Gaussians.from_points(points, rgb, scale=-1.0)
    with pytest.raises(ValueError, match="more than k=3 points"):
        Gaussians.from_points(points[:3], rgb[:3])
    with pytest.raises(ValueError, match=r"meta\['object_ids'\]: expected first dimension 5, got \(4,\)"):
        Gaussians.from_points(points, rgb, scale=0.1, meta={"object_ids": torch.zeros(4)})
    with pytest.raises(ValueError, match="'means' is a parameter name"):
        Gaussians.from_points(points, rgb, scale=0.1, meta={"means": torch.zeros(5)})
    params = dict(Gaussians.from_points(points, rgb, scale=0.1).state_dict()["params"])
    with pytest.raises(ValueError, match=r"shN: expected \(5, K - 1, 3\).* got \(5, 2, 3\)"):
        Gaussians({**params, "shN": torch.zeros(5, 2, 3)})
    with pytest.raises(ValueError, match="expected keys"):
        Gaussians({k: v for k, v in params.items() if k != "sh0"})
    with pytest.raises(ValueError, match="same sh_degree"):
        Gaussians.cat([_tagged(sh_degree=0), _tagged(sh_degree=1)])
    with pytest.raises(ValueError, match="same meta names"):
        Gaussians.cat([_tagged(), Gaussians.from_points(points, rgb, sh_degree=1, scale=0.1)])


@pytest.mark.parametrize("bases,degree", [(1, 0), (4, 1), (9, 2), (16, 3)])
def test_sh_degree_from_bases(bases, degree):
    assert sh_degree_from_bases(bases) == degree
    with pytest.raises(ValueError, match="not"):
        sh_degree_from_bases(bases + 1)
    assert math.isqrt(bases) == degree + 1
