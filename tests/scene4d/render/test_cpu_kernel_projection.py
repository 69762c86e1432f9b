"""The compiled EWA projection against projection.py (values and gradients to every input), and render() on it."""

from __future__ import annotations

import pytest
import torch

from scene4d.render.cpu_kernel import kernel_available, project_gaussians_cpu_kernel
from scene4d.render.projection import project_gaussians
from scene4d.render.render import render

F64 = torch.float64
INPUTS = ("means", "quats", "scales", "opacities", "viewmats", "Ks")


@pytest.fixture(scope="module", autouse=True)
def _needs_kernel():
    if not kernel_available():
        pytest.skip("the C++ CPU rasterizer does not build here (no working compiler)")


def with_edge_cases(scene):
    """The scene with Gaussians behind the camera, far off screen (clamped Jacobian), flat, with a zero
    quaternion and at a camera centre."""
    with torch.no_grad():
        scene.means[:10, 2] += torch.linspace(-8.0, 0.0, 10, dtype=scene.means.dtype)
        scene.means[10:20] *= 6.0
        scene.scales[20:25] = 0.0
        scene.scales[25:28, 1:] = 0.0
        scene.quats[28:31] = 0.0
        scene.means[31] = torch.linalg.inv(scene.viewmats[0])[:3, 3]
    return scene


def compare(scene, value_tol=1e-10, grad_rtol=1e-6, **kwargs):
    """Assert kernel == projection.py in values and in gradients to every input for random cotangents."""
    base = [getattr(scene, name).detach() for name in INPUTS]
    results = []
    for project in (project_gaussians, project_gaussians_cpu_kernel):
        leaves = [t.clone().requires_grad_() for t in base]
        results.append((leaves, project(*leaves, scene.width, scene.height, **kwargs)))
    (ref_leaves, ref), (out_leaves, out) = results
    assert torch.equal(out.radii, ref.radii)
    outputs = ("means2d", "conics", "depths", "opacities")
    for name in outputs:
        torch.testing.assert_close(getattr(out, name), getattr(ref, name), atol=value_tol, rtol=value_tol,
                                   msg=lambda m: f"{name}: {m}")
    g = torch.Generator().manual_seed(1)
    cotangents = [torch.randn(getattr(ref, name).shape, generator=g, dtype=ref.depths.dtype) for name in outputs]
    grads_ref = torch.autograd.grad([getattr(ref, n) for n in outputs], ref_leaves, cotangents)
    grads_out = torch.autograd.grad([getattr(out, n) for n in outputs], out_leaves, cotangents)
    for name, r, o in zip(INPUTS, grads_ref, grads_out):
        scale = float(r.abs().max()) if r.numel() else 0.0
        torch.testing.assert_close(o, r, rtol=grad_rtol, atol=grad_rtol * scale, msg=lambda m: f"grad {name}: {m}")
    return ref


def test_matches_projection_several_cameras(make_scene):
    ref = compare(make_scene(n=200, cams=3, seed=1))
    assert ref.visible.all()


def test_matches_projection_on_edge_cases(make_scene):
    ref = compare(with_edge_cases(make_scene(n=60, cams=2, width=40, height=30, seed=2, sigma=(0.01, 1.5))))
    visible = ref.visible
    assert (ref.depths < 0).any() and (~visible & (ref.depths > 0.5)).any() and visible.sum() > 40


@pytest.mark.parametrize("eps2d", [0.0, -0.5])
def test_degenerate_covariances_match(make_scene, eps2d):
    # Without the blur, flat Gaussians have det = 0; a negative one makes many det < 0: all culled, with
    # conic = (c, -b, a), and still differentiated through.
    scene = with_edge_cases(make_scene(n=60, cams=2, seed=3))
    if eps2d == 0.0:
        with torch.no_grad():
            scene.scales[25:28] = 0.1  # a rank-one covariance's det is then rounding noise, in either code
    ref = compare(scene, eps2d=eps2d)
    assert not ref.visible.all()


def test_near_and_far_planes_match(make_scene):
    ref = compare(with_edge_cases(make_scene(n=60, cams=2, seed=4)), near_plane=3.5, far_plane=4.5)
    assert 0 < ref.visible.sum() < ref.visible.numel() // 2


def test_no_gaussians(make_scene):
    ref = compare(make_scene(n=0, cams=2))
    assert ref.means2d.shape == (2, 0, 2) and ref.radii.shape == (2, 0, 2)


def test_float32_matches_float32_projection(make_scene):
    compare(make_scene(n=300, cams=2, dtype=torch.float32, seed=5), value_tol=1e-5, grad_rtol=1e-4)


def test_gradcheck_every_input(make_scene):
    scene = make_scene(n=5, cams=2, width=20, height=16, seed=6)
    with torch.no_grad():
        scene.means[0, 2] = -6.0  # behind both cameras
        scene.means[1] *= 5.0  # beyond the clamped field of view

    def project(*inputs):
        p = project_gaussians_cpu_kernel(*inputs, scene.width, scene.height)
        return p.means2d, p.conics, p.depths, p.opacities

    inputs = tuple(getattr(scene, name).detach().clone().requires_grad_() for name in INPUTS)
    assert torch.autograd.gradcheck(project, inputs)


def test_gradients_do_not_depend_on_thread_count(make_scene):
    scene = make_scene(n=1500, cams=2, seed=7)
    leaves = [getattr(scene, name).detach().clone().requires_grad_() for name in INPUTS]
    threads = torch.get_num_threads()
    grads = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            p = project_gaussians_cpu_kernel(*leaves, scene.width, scene.height)
            loss = p.means2d.sum() + p.conics.sum() + p.depths.sum() + p.opacities.sum()
            grads.append(torch.autograd.grad(loss, leaves))
    finally:
        torch.set_num_threads(threads)
    for other in grads[1:]:
        for a, b in zip(grads[0], other):
            assert torch.equal(a, b)


def test_bad_inputs_are_rejected_with_what_was_received(make_scene):
    scene = make_scene(n=5)
    inputs = [getattr(scene, name) for name in INPUTS]
    with pytest.raises(ValueError, match=r"one dtype, got \['torch.float32', 'torch.float64'\]"):
        project_gaussians_cpu_kernel(inputs[0].float(), *inputs[1:], scene.width, scene.height)


@pytest.mark.parametrize("sh_degree", [None, 2])
def test_render_matches_the_torch_backend_with_camera_gradients(make_scene, sh_degree):
    scene = make_scene(n=80, cams=2, seed=8)
    g = torch.Generator().manual_seed(9)
    colors = scene.colors[0] if sh_degree is None else 0.3 * torch.randn(80, 9, 3, generator=g, dtype=F64)
    base = {name: getattr(scene, name).detach() for name in INPUTS}
    base.update(colors=colors, backgrounds=scene.backgrounds.detach())
    results = {}
    for backend in ("torch", "cpu-kernel"):
        leaves = {name: t.clone().requires_grad_() for name, t in base.items()}
        out = render(**leaves, width=scene.width, height=scene.height, sh_degree=sh_degree, backend=backend)
        loss = sum((getattr(out, k) * torch.rand(getattr(out, k).shape, generator=torch.Generator().manual_seed(i),
                                                 dtype=F64)).sum() for i, k in enumerate(("colors", "alphas", "depths")))
        loss.backward()
        results[backend] = (out, leaves)
    (ref, ref_leaves), (out, out_leaves) = results["torch"], results["cpu-kernel"]
    for name in ("colors", "alphas", "depths"):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name), atol=1e-10, rtol=0)
    assert out.info["backend"] == "cpu-kernel" and torch.equal(out.info["radii"], ref.info["radii"])
    # Densification reads the screen-space gradient from info.
    grad2d, ref_grad2d = out.info["means2d"].grad, ref.info["means2d"].grad
    assert grad2d.shape == (2, 80, 2) and grad2d.abs().sum() > 0
    torch.testing.assert_close(grad2d, ref_grad2d, rtol=1e-6, atol=1e-6 * float(ref_grad2d.abs().max()))
    for name, leaf in out_leaves.items():
        r = ref_leaves[name].grad
        torch.testing.assert_close(leaf.grad, r, rtol=1e-6, atol=1e-6 * float(r.abs().max()), msg=lambda m: f"{name}: {m}")
