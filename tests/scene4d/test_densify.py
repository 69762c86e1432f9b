import math

import pytest
import torch
from gsplat.strategy import DefaultStrategy

from scene4d.densify import Densifier, make_optimizers
from scene4d.gaussians import Gaussians
from scene4d.render.render import render

W, H = 16, 12
LRS = {"means": 1e-3, "quats": 1e-3, "scales": 1e-3, "opacities": 1e-2, "sh0": 1e-2, "shN": 1e-3}
MOMENTS = ("exp_avg", "exp_avg_sq")


def _scene(low_opacity=()):
    """Five Gaussians in front of the camera and one behind it (never visible), each with its own tag."""
    g = torch.Generator().manual_seed(0)
    points = torch.cat([torch.rand(5, 3, generator=g) * torch.tensor([1.2, 0.9, 1.0]) - torch.tensor([0.6, 0.45, -2.5]),
                        torch.tensor([[0.0, 0.0, -3.0]])])
    meta = {"object_ids": torch.tensor([3, 1, 4, 1, 5, 9]), "weights": torch.rand(6, 2, generator=g)}
    gaussians = Gaussians.from_points(points, torch.rand(6, 3, generator=g), sh_degree=1, scale=0.15,
                                      opacity=0.5, meta=meta)
    gaussians.params["shN"].data.normal_(0, 0.1, generator=g)
    for i in low_opacity:
        gaussians.params["opacities"].data[i] = math.log(0.01 / 0.99)
    return gaussians


def _step(strategy, step=1, low_opacity=()):
    """Render, backprop, take an Adam step, snapshot, then run the densifier's post-backward step."""
    gaussians = _scene(low_opacity)
    optimizers = make_optimizers(gaussians, LRS)
    densifier = Densifier(strategy)
    densifier.check_sanity(gaussians, optimizers)
    state = densifier.initialize_state(scene_scale=1.0)
    viewmats = torch.eye(4)[None]
    Ks = torch.tensor([[[20.0, 0.0, W / 2], [0.0, 20.0, H / 2], [0.0, 0.0, 1.0]]])
    out = render(gaussians.get_means(), gaussians.get_quats(), gaussians.get_scales(), gaussians.get_opacities(),
                 gaussians.colors(), viewmats, Ks, W, H, sh_degree=1, backend="reference")
    densifier.step_pre_backward(gaussians, optimizers, state, step, out.info)
    target = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(1))
    ((out.colors - target) ** 2).mean().backward()
    for opt in optimizers.values():
        opt.step()
    before = {
        "params": {k: v.detach().clone() for k, v in gaussians.params.items()},
        "meta": {k: v.clone() for k, v in gaussians.meta.items()},
        "moments": {k: {m: optimizers[k].state[p][m].clone() for m in MOMENTS} for k, p in gaussians.params.items()},
        "visible": (out.info["radii"] > 0).all(-1).any(0),
    }
    densifier.step_post_backward(gaussians, optimizers, state, step, out.info)
    return gaussians, optimizers, before


def _parents(gaussians, before):
    """Index of the pre-step Gaussian each row descends from: sh0 is copied exactly by clone and split."""
    now = gaussians.params["sh0"].detach().flatten(1)
    old = before["params"]["sh0"].flatten(1)
    match = (now[:, None, :] == old[None, :, :]).all(-1)
    assert (match.sum(1) == 1).all()
    return match.int().argmax(1)


def _assert_metadata_follows(gaussians, before, parents):
    for k, v in gaussians.meta.items():
        torch.testing.assert_close(v, before["meta"][k][parents], rtol=0, atol=0)
    assert gaussians.meta["object_ids"].dtype == torch.long


def _assert_moments(gaussians, optimizers, before, kept_rows, kept_parents, new_rows):
    for k, p in gaussians.params.items():
        assert optimizers[k].param_groups[0]["params"][0] is p
        for m in MOMENTS:
            moment = optimizers[k].state[p][m]
            assert moment.shape == p.shape
            torch.testing.assert_close(moment[kept_rows], before["moments"][k][m][kept_parents], rtol=0, atol=0)
            assert not moment[new_rows].any(), f"{k} {m} of new Gaussians should be zero"
    assert before["moments"]["means"]["exp_avg"].abs().sum() > 0


def test_clone_appends_copies_with_parent_metadata_and_zero_moments():
    gaussians, optimizers, before = _step(DefaultStrategy(refine_start_iter=0, refine_every=1, reset_every=10**6,
                                                          grow_grad2d=0.0, grow_scale3d=1e9, prune_opa=0.0))
    visible = torch.nonzero(before["visible"])[:, 0]
    assert visible.tolist() == [0, 1, 2, 3, 4]
    assert gaussians.num_gaussians == 6 + 5
    parents = _parents(gaussians, before)
    assert parents.tolist() == list(range(6)) + visible.tolist()
    _assert_metadata_follows(gaussians, before, parents)
    for k, v in gaussians.params.items():
        torch.testing.assert_close(v.detach(), before["params"][k][parents], rtol=0, atol=0)
    _assert_moments(gaussians, optimizers, before, torch.arange(6), torch.arange(6), torch.arange(6, 11))


def test_split_replaces_parents_by_two_smaller_children():
    gaussians, optimizers, before = _step(DefaultStrategy(refine_start_iter=0, refine_every=1, reset_every=10**6,
                                                          grow_grad2d=0.0, grow_scale3d=0.0, prune_opa=0.0))
    assert gaussians.num_gaussians == 6 - 5 + 2 * 5
    parents = _parents(gaussians, before)
    assert parents[0].item() == 5  # the invisible one is kept, first
    assert sorted(parents[1:].tolist()) == sorted(2 * list(range(5)))
    _assert_metadata_follows(gaussians, before, parents)
    children = torch.arange(1, 11)
    scales = gaussians.params["scales"].detach()
    torch.testing.assert_close(scales[children], before["params"]["scales"][parents[children]] - math.log(1.6))
    torch.testing.assert_close(gaussians.params["quats"].detach(), before["params"]["quats"][parents])
    assert (gaussians.params["means"].detach()[children] != before["params"]["means"][parents[children]]).any(-1).all()
    _assert_moments(gaussians, optimizers, before, torch.tensor([0]), torch.tensor([5]), children)


def test_prune_removes_transparent_gaussians_and_their_metadata():
    gaussians, optimizers, before = _step(DefaultStrategy(refine_start_iter=0, refine_every=1, reset_every=10**6,
                                                          grow_grad2d=1e9, prune_opa=0.3), low_opacity=(1, 4))
    assert gaussians.num_gaussians == 4
    parents = _parents(gaussians, before)
    assert parents.tolist() == [0, 2, 3, 5]
    _assert_metadata_follows(gaussians, before, parents)
    assert gaussians.meta["object_ids"].tolist() == [3, 4, 1, 9]
    _assert_moments(gaussians, optimizers, before, torch.arange(4), parents, torch.tensor([], dtype=torch.long))


def test_nothing_changes_before_refine_start():
    gaussians, optimizers, before = _step(DefaultStrategy(refine_start_iter=5, refine_every=1, grow_grad2d=0.0,
                                                          prune_opa=0.3), low_opacity=(1,))
    assert gaussians.num_gaussians == 6
    _assert_moments(gaussians, optimizers, before, torch.arange(6), torch.arange(6), torch.tensor([], dtype=torch.long))


def test_opacity_reset_is_applied():
    gaussians, optimizers, before = _step(DefaultStrategy(refine_start_iter=0, refine_every=1000, reset_every=2,
                                                          prune_opa=0.05), step=2)
    assert gaussians.num_gaussians == 6
    expected = torch.clamp(torch.sigmoid(before["params"]["opacities"]), max=0.1)
    torch.testing.assert_close(gaussians.get_opacities().detach(), expected)
    p = gaussians.params["opacities"]
    assert not optimizers["opacities"].state[p]["exp_avg"].any()
    torch.testing.assert_close(optimizers["means"].state[gaussians.params["means"]]["exp_avg"],
                               before["moments"]["means"]["exp_avg"])


def test_check_sanity_and_optimizer_errors():
    gaussians = _scene()
    with pytest.raises(ValueError, match=r"one learning rate for each trainable parameter"):
        make_optimizers(gaussians, {"means": 1e-3})
    optimizers = make_optimizers(gaussians, LRS)
    gaussians.meta["weights"].requires_grad_(True)
    with pytest.raises(ValueError, match=r"meta entries must not require grad, got \['weights'\]"):
        Densifier().check_sanity(gaussians, optimizers)
    gaussians.meta["weights"].requires_grad_(False)
    del optimizers["shN"]
    with pytest.raises(AssertionError, match="trainable parameters and optimizers"):
        Densifier().check_sanity(gaussians, optimizers)
