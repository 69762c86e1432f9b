"""The compiled SH colours against sh_colors (values and gradients), edge cases and thread independence."""

from __future__ import annotations

import pytest
import torch

from scene4d.render.cpu_kernel import kernel_available, sh_colors_cpu_kernel
from scene4d.render.sh import sh_colors

F64 = torch.float64


@pytest.fixture(scope="module", autouse=True)
def _needs_kernel():
    if not kernel_available():
        pytest.skip("the C++ CPU rasterizer does not build here (no working compiler)")


def sh_inputs(n=200, cams=3, k=16, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)
    coeffs = 2.0 * torch.randn(n, k, 3, generator=g, dtype=dtype)
    means = torch.randn(n, 3, generator=g, dtype=dtype)
    centers = 3.0 * torch.randn(cams, 3, generator=g, dtype=dtype)
    return coeffs, means, centers


def compare(degree, inputs, value_tol=1e-12, grad_rtol=1e-9):
    results = []
    for shade in (sh_colors, sh_colors_cpu_kernel):
        leaves = [t.detach().clone().requires_grad_() for t in inputs]
        results.append((leaves, shade(degree, *leaves)))
    (ref_leaves, ref), (out_leaves, out) = results
    torch.testing.assert_close(out, ref, atol=value_tol, rtol=value_tol)
    cotangent = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=ref.dtype)
    grads_ref = torch.autograd.grad(ref, ref_leaves, cotangent, allow_unused=True)
    grads_out = torch.autograd.grad(out, out_leaves, cotangent)
    for name, r, o in zip(("coeffs", "means", "cam_centers"), grads_ref, grads_out):
        r = torch.zeros_like(o) if r is None else r  # degree 0 does not depend on the direction
        scale = float(r.abs().max()) if r.numel() else 0.0
        torch.testing.assert_close(o, r, rtol=grad_rtol, atol=grad_rtol * scale, msg=lambda m: f"grad {name}: {m}")
    return ref


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_matches_sh_colors(degree):
    colors = compare(degree, sh_inputs(seed=degree))
    assert (colors == 0).any() and (colors > 0).any()  # the clamp at 0 is exercised


def test_more_coefficients_than_the_degree_uses():
    coeffs, means, centers = sh_inputs(k=9)
    compare(1, (coeffs, means, centers))


def test_gaussian_at_a_camera_centre():
    coeffs, means, centers = sh_inputs(n=5, cams=2)
    means[2] = centers[1]  # zero direction: F.normalize keeps it zero, with gradient v / eps
    compare(3, (coeffs, means, centers))


def test_colour_exactly_at_the_clamp():
    coeffs, means, centers = sh_inputs(n=4, cams=1, k=1)
    coeffs[0, 0] = -0.5 / 0.28209479177387814  # SH_C0 * c + 0.5 rounds to exactly 0: no gradient there
    colors = compare(0, (coeffs, means, centers))
    assert (colors[0, 0] == 0).all()


def test_no_gaussians():
    colors = compare(2, sh_inputs(n=0, cams=2))
    assert colors.shape == (2, 0, 3)


def test_float32_matches_float32_sh_colors():
    compare(3, sh_inputs(n=500, dtype=torch.float32), value_tol=1e-5, grad_rtol=1e-4)


def test_gradcheck():
    inputs = tuple(t.requires_grad_() for t in sh_inputs(n=6, cams=2, k=16))
    assert torch.autograd.gradcheck(lambda *x: sh_colors_cpu_kernel(3, *x), inputs)


def test_gradients_do_not_depend_on_thread_count():
    leaves = [t.requires_grad_() for t in sh_inputs(n=1500, cams=2)]
    threads = torch.get_num_threads()
    grads = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            grads.append(torch.autograd.grad(sh_colors_cpu_kernel(3, *leaves).sum(), leaves))
    finally:
        torch.set_num_threads(threads)
    for other in grads[1:]:
        for a, b in zip(grads[0], other):
            assert torch.equal(a, b)


def test_bad_inputs_are_rejected_with_what_was_received():
    coeffs, means, centers = sh_inputs(n=3)
    with pytest.raises(ValueError, match=r"sh degree must be in \[0, 3\], got 4"):
        sh_colors_cpu_kernel(4, coeffs, means, centers)
    with pytest.raises(ValueError, match=r"one dtype, got \['torch.float32', 'torch.float64'\]"):
        sh_colors_cpu_kernel(1, coeffs.float(), means, centers)
