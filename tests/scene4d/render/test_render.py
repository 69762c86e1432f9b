"""The public render(): input checks, SH colours, colour layouts, and the info that densification reads."""

from __future__ import annotations

import re

import pytest
import torch

from scene4d.render.cpu_kernel import kernel_available
from scene4d.render.render import render
from scene4d.render.sh import eval_sh, rgb_to_sh0

F64 = torch.float64


def render_args(scene, colors=None, **kwargs):
    args = dict(means=scene.means, quats=scene.quats, scales=scene.scales, opacities=scene.opacities,
                colors=scene.colors if colors is None else colors, viewmats=scene.viewmats, Ks=scene.Ks,
                width=scene.width, height=scene.height, backend="torch")
    return {**args, **kwargs}


class TestInputChecks:
    @pytest.mark.parametrize("name, shape, expected", [
        ("means", (6, 2), "means: expected (N, 3), got (6, 2)"),
        ("quats", (6, 3), "quats: expected (6, 4), got (6, 3)"),
        ("scales", (5, 3), "scales: expected (6, 3), got (5, 3)"),
        ("opacities", (6, 1), "opacities: expected (6,), got (6, 1)"),
        ("colors", (2, 6, 3), "colors: expected (6, D) or (1, 6, D), got (2, 6, 3)"),
        ("viewmats", (4, 4), "viewmats: expected (C, 4, 4), got (4, 4)"),
        ("Ks", (2, 3, 3), "Ks: expected (1, 3, 3), got (2, 3, 3)"),
        ("backgrounds", (1, 4), "backgrounds: expected (1, 3), got (1, 4)"),
    ])
    def test_wrong_shapes_name_the_argument(self, make_scene, name, shape, expected):
        scene = make_scene(n=6)
        with pytest.raises(ValueError, match=re.escape(expected)):
            render(**render_args(scene, **{name: torch.zeros(shape, dtype=F64)}))

    def test_sh_coefficients_too_few_for_the_degree(self, make_scene):
        scene = make_scene(n=6)
        with pytest.raises(ValueError, match=re.escape("sh_degree=2 expects (6, K>=9, 3), got (6, 4, 3)")):
            render(**render_args(scene, colors=torch.zeros(6, 4, 3, dtype=F64), sh_degree=2))

    def test_empty_image(self, make_scene):
        with pytest.raises(ValueError, match="image size must be positive, got 0x29"):
            render(**render_args(make_scene(n=6), width=0))

    def test_unknown_backend(self, make_scene):
        with pytest.raises(ValueError, match="unknown render backend 'vulkan'"):
            render(**render_args(make_scene(n=6), backend="vulkan"))


def test_sh_degree_zero_renders_the_rgb(make_scene):
    scene = make_scene(n=40, cams=2)
    rgb = scene.colors[0]
    expected = render(**render_args(scene, colors=rgb))
    got = render(**render_args(scene, colors=rgb_to_sh0(rgb)[:, None, :], sh_degree=0))
    torch.testing.assert_close(got.colors, expected.colors, atol=1e-12, rtol=0)


def test_sh_degree_three_is_view_dependent_as_eval_sh(make_scene):
    scene = make_scene(n=40, cams=3)
    coeffs = 0.3 * torch.randn(40, 16, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    centres = torch.linalg.inv(scene.viewmats)[:, :3, 3]
    per_camera = torch.stack([torch.clamp(eval_sh(3, coeffs, scene.means - c) + 0.5, min=0.0) for c in centres])
    assert (per_camera[0] - per_camera[1]).abs().max() > 0.05  # the cameras see different colours
    expected = render(**render_args(scene, colors=per_camera))
    got = render(**render_args(scene, colors=coeffs, sh_degree=3))
    torch.testing.assert_close(got.colors, expected.colors, atol=1e-12, rtol=0)


def test_shared_and_per_camera_colours_agree(make_scene):
    scene = make_scene(n=40, cams=3, dim=5)
    shared = scene.colors[0]
    expected = render(**render_args(scene, colors=shared.expand(3, -1, -1)))
    got = render(**render_args(scene, colors=shared))
    for name in ("colors", "alphas", "depths"):
        torch.testing.assert_close(getattr(got, name), getattr(expected, name), atol=1e-12, rtol=0)
    assert got.colors.shape == (3, scene.height, scene.width, 5)


@pytest.mark.parametrize("backend", ["torch", "reference", "cpu-kernel"])
def test_info_feeds_gsplat_default_strategy(make_scene, backend):
    from gsplat.strategy import DefaultStrategy

    if backend == "cpu-kernel" and not kernel_available():
        pytest.skip("the C++ CPU rasterizer does not build here")
    scene = make_scene(n=40, cams=2, dtype=torch.float32).requires_grad_()
    out = render(**render_args(scene, colors=scene.colors[0], backgrounds=scene.backgrounds, backend=backend))
    info = out.info
    assert info["radii"].shape == (2, 40, 2) and info["means2d"].shape == (2, 40, 2)
    assert (info["width"], info["height"], info["n_cameras"], info["backend"]) == (37, 29, 2, backend)
    (out.colors.sum() + out.depths.sum()).backward()
    grad2d = info["means2d"].grad
    assert grad2d is not None and grad2d[info["radii"][..., 0] > 0].abs().sum() > 0
    # The strategy's statistics step, as the densifier drives it (it adds gaussian_ids, unused unpacked).
    strategy = DefaultStrategy(refine_start_iter=10)
    state = strategy.initialize_state()
    params = {name: getattr(scene, name) for name in ("means", "quats", "scales", "opacities")}
    strategy.step_post_backward(params, {}, state, step=0, info={"gaussian_ids": None, **info})
    visible = (info["radii"] > 0).all(-1)
    torch.testing.assert_close(state["count"], visible.sum(0).float())
    scaled = grad2d * torch.tensor([37 / 2 * 2, 29 / 2 * 2])  # to [-1, 1] screen units, times n_cameras
    torch.testing.assert_close(state["grad2d"], (scaled.norm(dim=-1) * visible).sum(0))
