"""The compiled CPU rasterizer against the brute-force reference: values, gradients, edge cases, build fallback."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from scene4d.render import cpu_kernel
from scene4d.render.cpu_kernel import kernel_available, rasterize_cpu_kernel
from scene4d.render.projection import ALPHA_THRESHOLD, ProjectedGaussians, project_gaussians
from scene4d.render.reference import rasterize_reference

WIDTH, HEIGHT = 37, 29  # not multiples of the 16-pixel tile


@pytest.fixture(scope="module", autouse=True)
def _needs_kernel():
    if not kernel_available():
        pytest.skip("the C++ CPU rasterizer does not build here (no working compiler)")


def screen_gaussians(c, n, d, dtype=torch.float64, seed=0, width=WIDTH, height=HEIGHT, sigma=(0.7, 4.7)):
    """Random (C, N) screen-space Gaussians with radii as projection computes them; ~10% culled."""
    g = torch.Generator().manual_seed(seed)
    lo = torch.tensor([-0.1 * width, -0.1 * height], dtype=dtype)
    means2d = lo + torch.rand(c, n, 2, generator=g, dtype=dtype) * torch.tensor([1.2 * width, 1.2 * height], dtype=dtype)
    s = sigma[0] + torch.rand(c, n, 2, generator=g, dtype=dtype) * (sigma[1] - sigma[0])
    rho = 1.6 * (torch.rand(c, n, generator=g, dtype=dtype) - 0.5)
    return _from_covariance(means2d, s, rho, g, d, dtype)


def _from_covariance(means2d, s, rho, g, d, dtype, opacities=None, depths=None):
    c, n = means2d.shape[:2]
    cov_a, cov_c, cov_b = s[..., 0] ** 2, s[..., 1] ** 2, rho * s[..., 0] * s[..., 1]
    det = cov_a * cov_c - cov_b**2
    conics = torch.stack([cov_c / det, -cov_b / det, cov_a / det], dim=-1)
    if opacities is None:
        opacities = torch.rand(c, n, generator=g, dtype=dtype)
    if depths is None:
        depths = 1.0 + 5.0 * torch.rand(c, n, generator=g, dtype=dtype)
    extent = torch.sqrt(2.0 * torch.log(torch.clamp(opacities / ALPHA_THRESHOLD, min=1.0)))
    radii = torch.ceil(extent[..., None] * s).to(torch.int32)
    radii[torch.rand(c, n, generator=g) < 0.1] = 0
    colors = torch.rand(c, n, d, generator=g, dtype=dtype)
    backgrounds = torch.rand(c, d, generator=g, dtype=dtype)
    return [means2d, conics, opacities, depths, colors, backgrounds], radii


def compare(leaves, radii, width=WIDTH, height=HEIGHT, value_tol=1e-10, grad_rtol=1e-4, use_background=True):
    """Assert kernel == reference in values and in gradients for random output cotangents."""
    leaves = [t.detach().clone().requires_grad_() for t in leaves]
    if not use_background:
        leaves = leaves[:5]

    def run(rasterize):
        means2d, conics, opacities, depths, colors = leaves[:5]
        projected = ProjectedGaussians(means2d, conics, depths, radii, opacities)
        return rasterize(projected, colors, width, height, leaves[5] if use_background else None)

    ref, out = run(rasterize_reference), run(rasterize_cpu_kernel)
    for r, o in zip(ref, out):
        assert o.dtype == r.dtype and o.shape == r.shape
        torch.testing.assert_close(o, r, atol=value_tol, rtol=0)
    g = torch.Generator().manual_seed(1)
    cotangents = [torch.randn(r.shape, generator=g, dtype=r.dtype) for r in ref]
    grads_ref = torch.autograd.grad(ref, leaves, cotangents, allow_unused=True)
    grads_out = torch.autograd.grad(out, leaves, cotangents, allow_unused=True)
    for name, r, o in zip(["means2d", "conics", "opacities", "depths", "colors", "backgrounds"], grads_ref, grads_out):
        r = torch.zeros_like(o) if r is None else r
        scale = float(r.abs().max()) if r.numel() else 0.0
        torch.testing.assert_close(o, r, rtol=grad_rtol, atol=grad_rtol * scale + 1e-12, msg=lambda m: f"{name}: {m}")
    return ref


@pytest.mark.parametrize("dim", [1, 3, 7])
def test_matches_reference_several_cameras(dim):
    leaves, radii = screen_gaussians(3, 120, dim, seed=dim)
    colors, alphas, _ = compare(leaves, radii)
    assert alphas.max() > 0.9 and colors.shape == (3, HEIGHT, WIDTH, dim)


def test_matches_reference_without_background():
    leaves, radii = screen_gaussians(2, 150, 3, seed=4)
    compare(leaves, radii, use_background=False)


def test_projected_scene_with_behind_camera_and_off_screen_gaussians():
    g = torch.Generator().manual_seed(5)
    n = 120
    means = torch.cat([torch.rand(n, 2, generator=g) * 3 - 1.5, torch.rand(n, 1, generator=g) * 6 - 1], -1)
    means = means.double()  # z in [-1, 5): some behind the camera; x, y beyond the view: some off screen
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64)
    scales = 0.02 + 0.2 * torch.rand(n, 3, generator=g, dtype=torch.float64)
    opacities = torch.rand(n, generator=g, dtype=torch.float64)
    viewmats = torch.eye(4, dtype=torch.float64).repeat(2, 1, 1)
    viewmats[1, 0, 3] = 0.4
    ks = torch.tensor([[30.0, 0, WIDTH / 2], [0, 30.0, HEIGHT / 2], [0, 0, 1]], dtype=torch.float64).repeat(2, 1, 1)
    projected = project_gaussians(means, quats, scales, opacities, viewmats, ks, WIDTH, HEIGHT)
    visible = projected.visible
    assert (projected.depths < 0).any() and (~visible & (projected.depths > 0.5)).any() and visible.sum() > 50
    colors = torch.rand(2, n, 3, generator=g, dtype=torch.float64)
    leaves = [projected.means2d, projected.conics, projected.opacities, projected.depths, colors, colors[:, 0]]
    compare([t.detach() for t in leaves], projected.radii)


def test_no_gaussians_gives_the_background():
    leaves, radii = screen_gaussians(2, 0, 3)
    colors, alphas, depths = compare(leaves, radii)
    torch.testing.assert_close(colors, leaves[5][:, None, None, :].expand_as(colors))
    assert alphas.abs().max() == 0 and depths.abs().max() == 0


def test_gaussians_straddling_tile_borders():
    # Centres on and around the tile corners (16, 32 px) with footprints spanning up to four tiles.
    corners = torch.tensor([[16.0, 16.0], [32.0, 16.0], [15.5, 28.0], [33.0, 15.0], [31.9, 0.2]], dtype=torch.float64)
    means2d = (corners.repeat(8, 1) + 0.3 * torch.randn(40, 2, generator=torch.Generator().manual_seed(6)))[None]
    g = torch.Generator().manual_seed(7)
    s = 1.0 + 4.0 * torch.rand(1, 40, 2, generator=g, dtype=torch.float64)
    leaves, radii = _from_covariance(means2d, s, torch.zeros(1, 40, dtype=torch.float64), g, 3, torch.float64)
    radii = radii.clamp(min=1)  # keep every one drawn
    compare(leaves, radii)


def test_opaque_stack_terminates_early_and_ties_keep_index_order():
    # 30 near-opaque Gaussians on one spot, several sharing a depth: the transmittance hits 1e-4 after a few.
    n = 30
    g = torch.Generator().manual_seed(8)
    means2d = (torch.tensor([18.0, 14.0]) + torch.randn(n, 2, generator=g)).double()[None]
    s = torch.full((1, n, 2), 6.0, dtype=torch.float64)
    opacities = torch.full((1, n), 0.95, dtype=torch.float64)
    depths = torch.tensor([float(i // 3) for i in range(n)], dtype=torch.float64)[None] + 1.0
    leaves, radii = _from_covariance(means2d, s, torch.zeros(1, n, dtype=torch.float64), g, 3, torch.float64,
                                     opacities=opacities, depths=depths)
    radii = radii.clamp(min=1)
    _, alphas, _ = compare(leaves, radii)
    assert alphas.max() > 1 - 1e-3


def test_indefinite_conic_covers_the_whole_image_like_the_reference():
    # An indefinite conic has no bounded footprint: the reference's power clamp makes alpha = opacity along
    # whole lines, so the kernel must not cull it to a box.
    leaves, radii = screen_gaussians(1, 40, 3, seed=13)
    leaves[1][0, 0] = torch.tensor([0.05, 0.3, 0.02], dtype=torch.float64)
    radii[0, 0] = 1
    _, alphas, _ = compare(leaves, radii)
    assert alphas[0, 0, -1] > 0 and alphas[0, -1, 0] > 0  # far corners reached


def test_float32_matches_float32_reference():
    leaves, radii = screen_gaussians(2, 200, 3, dtype=torch.float32, seed=9)
    compare(leaves, radii, value_tol=1e-5, grad_rtol=1e-4)


def test_gradcheck_tiny_scene():
    leaves, radii = screen_gaussians(1, 6, 2, seed=10, width=9, height=7, sigma=(1.0, 2.5))
    leaves = [t.requires_grad_() for t in leaves]

    def fn(means2d, conics, opacities, depths, colors, backgrounds):
        projected = ProjectedGaussians(means2d, conics, depths, radii, opacities)
        return rasterize_cpu_kernel(projected, colors, 9, 7, backgrounds)

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradients_do_not_depend_on_thread_count():
    leaves, radii = screen_gaussians(2, 300, 3, seed=11, width=70, height=50)
    leaves = [t.requires_grad_() for t in leaves]
    projected = ProjectedGaussians(leaves[0], leaves[1], leaves[3], radii, leaves[2])
    threads = torch.get_num_threads()
    grads = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            out = rasterize_cpu_kernel(projected, leaves[4], 70, 50, leaves[5])
            grads.append(torch.autograd.grad(sum(o.sum() for o in out), leaves))
    finally:
        torch.set_num_threads(threads)
    for other in grads[1:]:
        for a, b in zip(grads[0], other):
            assert torch.equal(a, b)


def test_bad_inputs_are_rejected_with_what_was_received():
    leaves, radii = screen_gaussians(1, 5, 3)
    means2d, conics, opacities, depths, colors, backgrounds = leaves
    projected = ProjectedGaussians(means2d, conics, depths, radii, opacities)
    with pytest.raises(ValueError, match=r"colors: expected \(1, 5, D\).*got \(5, 3\)"):
        rasterize_cpu_kernel(projected, colors[0], WIDTH, HEIGHT)
    with pytest.raises(ValueError, match=r"backgrounds: expected \(1, 3\), got \(3,\)"):
        rasterize_cpu_kernel(projected, colors, WIDTH, HEIGHT, backgrounds[0])
    with pytest.raises(ValueError, match="one dtype"):
        rasterize_cpu_kernel(projected, colors.float(), WIDTH, HEIGHT)
    with pytest.raises(ValueError, match=r"projected.conics: expected \(1, 5, 3\), got \(1, 5, 2\)"):
        rasterize_cpu_kernel(ProjectedGaussians(means2d, conics[..., :2], depths, radii, opacities), colors, 4, 4)
    with pytest.raises(ValueError, match="image size must be positive, got 0x4"):
        rasterize_cpu_kernel(projected, colors, 0, 4)


def test_failed_build_warns_once_and_reports_unavailable(monkeypatch, caplog, capsys):
    def broken_build(verbose=False):
        raise RuntimeError("Error building extension 'scene4d_cpu_rasterizer'\ng++: not found")

    monkeypatch.setattr(cpu_kernel, "build_kernel", broken_build)
    cpu_kernel._extension.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger=cpu_kernel.__name__):
            assert not kernel_available() and not kernel_available()
        assert [r.getMessage() for r in caplog.records] == [
            "CPU rasterizer kernel failed to build (Error building extension 'scene4d_cpu_rasterizer'); "
            "using the PyTorch rasterizer instead"
        ]
        assert cpu_kernel.main(["--build"]) == 1
        assert "g++: not found" in capsys.readouterr().err
    finally:
        cpu_kernel._extension.cache_clear()
    monkeypatch.undo()
    assert kernel_available()


def test_alpha_threshold_and_clamp_boundaries():
    # One isotropic Gaussian with opacity 1: its centre pixel is clamped at 0.999 and its rim is thresholded;
    # the kernel must agree with the reference on both sides of each boundary, gradients included.
    means2d = torch.tensor([[[8.5, 6.5], [13.7, 10.2]]], dtype=torch.float64)
    s = torch.tensor([[[2.0, 2.0], [1.5, 3.0]]], dtype=torch.float64)
    g = torch.Generator().manual_seed(12)
    leaves, radii = _from_covariance(means2d, s, torch.zeros(1, 2, dtype=torch.float64), g, 3, torch.float64,
                                     opacities=torch.tensor([[1.0, 0.5]], dtype=torch.float64))
    radii = radii.clamp(min=1)
    _, alphas, _ = compare(leaves, radii, width=17, height=13)
    assert math.isclose(float(alphas[0, 6, 8, 0].detach()), 0.999, rel_tol=1e-12)
