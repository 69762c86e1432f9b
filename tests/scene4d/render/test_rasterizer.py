"""Every rasterizer backend against the brute-force reference, and the reference against finite differences.

Backends: ``torch`` (always), ``cpu-kernel`` (when its extension builds) and ``gsplat`` (when CUDA is there; run
in float32 on the GPU and compared with a float32-sized tolerance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import pytest
import torch

from scene4d.render.projection import ALPHA_MAX, ALPHA_THRESHOLD, TRANSMITTANCE_MIN, ProjectedGaussians
from scene4d.render.reference import rasterize_reference
from scene4d.render.tiles import rasterize_tiles

F64 = torch.float64
OUTPUTS = ("colors", "alphas", "depths")


@dataclass
class Backend:
    name: str
    rasterize: Callable
    exact: bool  # float64 arithmetic: values within 1e-10, gradients to rounding; else float32 CUDA tolerances


def _rasterize_gsplat(projected, colors, width, height, backgrounds=None):
    """gsplat's CUDA tile rasterizer behind the reference's signature (float32 on the GPU, results cast back)."""
    from gsplat.cuda._wrapper import isect_offset_encode, isect_tiles, rasterize_to_pixels

    def cuda(t):
        return t.to("cuda", torch.float32)

    num_cams, tile = projected.depths.shape[0], 16
    tiles_x, tiles_y = math.ceil(width / tile), math.ceil(height / tile)
    means2d, depths = cuda(projected.means2d), cuda(projected.depths)
    _, isect_ids, flatten_ids = isect_tiles(means2d, projected.radii.to("cuda"), depths, tile, tiles_x, tiles_y)
    offsets = isect_offset_encode(isect_ids, num_cams, tiles_x, tiles_y)
    feats = torch.cat([cuda(colors), depths[..., None]], dim=-1)
    if backgrounds is not None:
        backgrounds = torch.cat([cuda(backgrounds), torch.zeros(num_cams, 1, device="cuda")], dim=-1)
    image, alpha = rasterize_to_pixels(means2d, cuda(projected.conics), feats, cuda(projected.opacities),
                                       width, height, tile, offsets, flatten_ids, backgrounds=backgrounds)
    depth = image[..., -1:] / torch.clamp(alpha, min=1e-10)
    return tuple(t.to(colors.device, colors.dtype) for t in (image[..., :-1], alpha, depth))


@pytest.fixture(params=["torch", "cpu-kernel", "gsplat"])
def backend(request) -> Backend:
    if request.param == "torch":
        return Backend("torch", rasterize_tiles, exact=True)
    if request.param == "cpu-kernel":
        try:
            from scene4d.render.cpu_kernel import kernel_available, rasterize_cpu_kernel
        except ImportError as error:
            pytest.skip(f"scene4d.render.cpu_kernel is not importable: {error}")
        if not kernel_available():
            pytest.skip("the C++ CPU rasterizer does not build here")
        return Backend("cpu-kernel", rasterize_cpu_kernel, exact=True)
    if not torch.cuda.is_available():
        pytest.skip("gsplat's rasterizer needs CUDA")
    return Backend("gsplat", _rasterize_gsplat, exact=False)


def rasterize_scene(rasterize, scene, projected=None):
    projected = scene.project() if projected is None else projected
    return rasterize(projected, scene.colors, scene.width, scene.height, scene.backgrounds)


def scene_grads(rasterize, scene, output, seed=0):
    """Gradients of ``sum(cotangent * output)`` wrt every scene tensor."""
    scene.requires_grad_()
    values = dict(zip(OUTPUTS, rasterize_scene(rasterize, scene)))
    generator = torch.Generator().manual_seed(seed)
    cotangent = torch.rand(values[output].shape, generator=generator, dtype=values[output].dtype)
    names, tensors = zip(*scene.tensors().items())
    return dict(zip(names, torch.autograd.grad((values[output] * cotangent).sum(), tensors, allow_unused=True)))


def assert_values_close(backend, got, expected, atol=1e-10):
    for name, g, e in zip(OUTPUTS, got, expected):
        assert g.shape == e.shape, name
        if backend.exact:
            torch.testing.assert_close(g, e, atol=atol, rtol=0, msg=lambda m: f"{backend.name} {name}: {m}")
        else:  # a pixel where float32 rounding flips a threshold may differ by about 1/255
            torch.testing.assert_close(g, e, atol=1e-2, rtol=0, msg=lambda m: f"{backend.name} {name}: {m}")
            assert (g - e).abs().mean() < 1e-4, name


def assert_grads_close(backend, got, expected):
    for name, e in expected.items():
        g = got[name]
        if e is None:
            assert g is None or not g.any(), name
        elif backend.exact:
            torch.testing.assert_close(g, e, rtol=1e-7, atol=1e-9 * max(1.0, e.abs().max().item()),
                                       msg=lambda m: f"{backend.name} d/d{name}: {m}")
        else:
            assert (g - e).norm() <= 2e-2 * e.norm() + 1e-6, name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_values_match_reference(backend, make_scene, dtype):
    scene = make_scene(n=80, cams=3, dim=5, dtype=dtype)
    expected = rasterize_scene(rasterize_reference, scene)
    assert expected[1].max() > 0.5  # the scene covers the images
    assert_values_close(backend, rasterize_scene(backend.rasterize, scene), expected,
                        atol=1e-10 if dtype == F64 else 1e-5)


@pytest.mark.parametrize("output", OUTPUTS)
def test_gradients_match_reference(backend, make_scene, output):
    scene = make_scene(n=60, cams=3, dim=4)
    expected = scene_grads(rasterize_reference, scene, output)
    assert all(expected[name].abs().sum() > 0 for name in ("means", "quats", "scales", "opacities", "viewmats"))
    assert_grads_close(backend, scene_grads(backend.rasterize, make_scene(n=60, cams=3, dim=4), output), expected)


def test_one_hot_features(backend, make_scene):
    scene = make_scene(n=50, cams=2)
    scene.colors = torch.nn.functional.one_hot(torch.arange(50) % 5, 5).to(F64).expand(2, -1, -1).contiguous()
    scene.backgrounds = torch.zeros(2, 5, dtype=F64)
    got = rasterize_scene(backend.rasterize, scene)
    assert_values_close(backend, got, rasterize_scene(rasterize_reference, scene))
    torch.testing.assert_close(got[0].sum(-1, keepdim=True), got[1], atol=1e-10 if backend.exact else 1e-4, rtol=0)


def dense_screen_gaussians(n, width, height, seed, opacity=(0.1, 0.95), sigma=(0.6, 2.1)):
    """Random screen-space Gaussians (C=1) as leaves: ``[means2d, conics, opacities, depths, colors, backgrounds]``."""
    g = torch.Generator().manual_seed(seed)
    means2d = torch.rand(1, n, 2, generator=g, dtype=F64) * torch.tensor([width, height], dtype=F64)
    sigma = sigma[0] + (sigma[1] - sigma[0]) * torch.rand(1, n, 2, generator=g, dtype=F64)
    rho = 0.8 * (torch.rand(1, n, generator=g, dtype=F64) - 0.5)
    cov_a, cov_c, cov_b = sigma[..., 0] ** 2, sigma[..., 1] ** 2, rho * sigma[..., 0] * sigma[..., 1]
    det = cov_a * cov_c - cov_b**2
    conics = torch.stack([cov_c / det, -cov_b / det, cov_a / det], dim=-1)
    opacities = opacity[0] + (opacity[1] - opacity[0]) * torch.rand(1, n, generator=g, dtype=F64)
    depths = 1.0 + torch.rand(1, n, generator=g, dtype=F64)
    colors, backgrounds = torch.rand(1, n, 3, generator=g, dtype=F64), torch.rand(1, 3, generator=g, dtype=F64)
    return [means2d, conics, opacities, depths, colors, backgrounds], footprint_radii(conics, opacities)


def footprint_radii(conics, opacities):
    """(C, N, 2) int radii of the alpha >= ALPHA_THRESHOLD box, as projection computes them."""
    a, b, c = conics.unbind(-1)
    variances = torch.stack([c, a], dim=-1) / (a * c - b * b)[..., None]
    extent = torch.sqrt(2 * torch.log(opacities / ALPHA_THRESHOLD))
    return torch.ceil(extent[..., None] * variances.sqrt()).to(torch.int32)


def screen_rasterize(rasterize, radii, width, height):
    def run(means2d, conics, opacities, depths, colors, backgrounds):
        projected = ProjectedGaussians(means2d, conics, depths, radii, opacities)
        return rasterize(projected, colors, width, height, backgrounds)

    return run


def screen_alphas(leaves, width, height):
    """Per pixel and Gaussian, front to back: ``v = opacity * exp(power)``, alpha, and the transmittance after it
    without early termination, (H * W, N) each."""
    means2d, conics, opacities, depths = (t.detach()[0] for t in leaves[:4])
    order = torch.argsort(depths)
    pix = torch.stack(torch.meshgrid(torch.arange(width, dtype=F64) + 0.5, torch.arange(height, dtype=F64) + 0.5,
                                     indexing="xy"), dim=-1).reshape(-1, 1, 2)
    dx, dy = (pix - means2d[order]).unbind(-1)
    a, b, c = conics[order].unbind(-1)
    v = opacities[order] * torch.exp(-0.5 * (a * dx**2 + c * dy**2) - b * dx * dy)
    alpha = torch.where(v >= ALPHA_THRESHOLD, v.clamp(max=ALPHA_MAX), 0.0)
    return v, alpha, torch.cumprod(1 - alpha, dim=-1)


def far_from_thresholds(leaves, width, height):
    """True when no pixel is within finite-difference reach of a clamp, threshold or termination switch."""
    v, _, trans = screen_alphas(leaves, width, height)
    return bool(((v - ALPHA_THRESHOLD).abs() > 1e-4).all() and ((v - ALPHA_MAX).abs() > 1e-4).all()
                and ((trans / TRANSMITTANCE_MIN - 1).abs() > 1e-3).all())


def gradcheck_tiny_scene(rasterize):
    width, height = 11, 9
    leaves, radii = dense_screen_gaussians(3, width, height, seed=10)  # 32 of the 99 pixels see all three
    assert far_from_thresholds(leaves, width, height) and (radii > 0).all()
    leaves = [t.requires_grad_() for t in leaves]
    return torch.autograd.gradcheck(screen_rasterize(rasterize, radii, width, height), leaves, fast_mode=True)


def test_reference_gradcheck():
    assert gradcheck_tiny_scene(rasterize_reference)


def test_backend_gradcheck(backend):
    if not backend.exact:
        pytest.skip("finite differences need float64")
    assert gradcheck_tiny_scene(backend.rasterize)


def test_no_gaussians(backend, make_scene):
    scene = make_scene(n=0, cams=2, dim=4)
    scene.backgrounds.requires_grad_()
    colors, alphas, depths = rasterize_scene(backend.rasterize, scene)
    assert colors.shape == (2, scene.height, scene.width, 4)
    assert alphas.shape == depths.shape == (2, scene.height, scene.width, 1)
    torch.testing.assert_close(colors, scene.backgrounds[:, None, None, :].expand_as(colors), atol=1e-7, rtol=0)
    assert (alphas == 0).all() and (depths == 0).all()
    colors.sum().backward()
    torch.testing.assert_close(scene.backgrounds.grad, torch.full((2, 4), float(scene.width * scene.height), dtype=F64))


def test_culled_gaussians_contribute_nothing(backend, make_scene):
    scene = make_scene(n=40, cams=1)
    cam_to_world = torch.linalg.inv(scene.viewmats[0])
    in_camera = torch.tensor([[0.0, 0.0, -1.0], [0.3, 0.2, -3.0],  # behind the camera
                              [40.0, 0.0, 4.0], [0.0, -30.0, 4.0]], dtype=F64)  # in front, far outside the image
    extra = in_camera @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]
    culled = scene.append(extra)
    assert not culled.project().visible[0, -4:].any()
    expected = rasterize_scene(rasterize_reference, scene)
    assert_values_close(backend, rasterize_scene(backend.rasterize, culled), expected)
    for output in OUTPUTS:
        grads = scene_grads(backend.rasterize, culled, output)
        for name in ("means", "quats", "scales", "opacities"):
            assert (grads[name][-4:] == 0).all(), (output, name)
        assert (grads["colors"][:, -4:] == 0).all(), output


@pytest.mark.parametrize("size", [(16, 16), (17, 9), (5, 41), (1, 1)])
def test_image_sizes(backend, make_scene, size):
    scene = make_scene(n=30, cams=2, width=size[0], height=size[1])
    assert_values_close(backend, rasterize_scene(backend.rasterize, scene), rasterize_scene(rasterize_reference, scene))
    assert_grads_close(backend, scene_grads(backend.rasterize, scene, "colors"),
                       scene_grads(rasterize_reference, scene, "colors"))


def test_gaussians_straddling_tile_borders(backend):
    # Centres on the corners shared by 4, 8 and 16 pixel tiles and on tile edges; footprints ~7 px across. The
    # last one is opaque and sits on a pixel centre, where alpha is clamped to ALPHA_MAX.
    leaves, radii = dense_screen_gaussians(5, 40, 36, seed=1, opacity=(0.6, 0.9))
    with torch.no_grad():
        leaves[0][0] = torch.tensor([[16.0, 16.0], [8.0, 24.0], [32.0, 20.5], [23.7, 32.0], [12.5, 5.5]], dtype=F64)
        leaves[2][0, -1] = 1.0
    radii = footprint_radii(leaves[1], leaves[2])
    leaves = [t.requires_grad_() for t in leaves]
    outputs = {}
    for name, rasterize in (("got", backend.rasterize), ("expected", rasterize_reference)):
        values = screen_rasterize(rasterize, radii, 40, 36)(*leaves)
        loss = sum((v * torch.linspace(0.5, 1.5, v.numel(), dtype=F64).reshape(v.shape)).sum() for v in values)
        outputs[name] = values, dict(zip(("means2d", "conics", "opacities", "depths", "colors", "backgrounds"),
                                         torch.autograd.grad(loss, leaves)))
    assert_values_close(backend, outputs["got"][0], outputs["expected"][0])
    assert_grads_close(backend, outputs["got"][1], outputs["expected"][1])


def test_early_termination(backend):
    # 60 opaque Gaussians piled on 12x10 pixels: the transmittance runs out after a few of them.
    leaves, radii = dense_screen_gaussians(60, 12, 10, seed=2, opacity=(0.8, 0.99), sigma=(2.0, 4.0))
    leaves = [t.requires_grad_() for t in leaves]
    assert (screen_alphas(leaves, 12, 10)[2][:, -1] < TRANSMITTANCE_MIN**2).float().mean() > 0.5
    expected = screen_rasterize(rasterize_reference, radii, 12, 10)(*leaves)
    got = screen_rasterize(backend.rasterize, radii, 12, 10)(*leaves)
    assert_values_close(backend, got, expected)
    names = ("means2d", "conics", "opacities", "depths", "colors", "backgrounds")
    grads = [dict(zip(names, torch.autograd.grad(sum(v.sum() for v in out), leaves))) for out in (got, expected)]
    assert_grads_close(backend, *grads)


@pytest.mark.parametrize("tile_size, chunk_elements", [(4, 64), (8, 512), (16, 4096), (16, 1 << 20)])
def test_torch_tiling_does_not_change_results(make_scene, tile_size, chunk_elements):
    scene = make_scene(n=60, cams=2, width=33, height=21)

    def rasterize(*args):
        return rasterize_tiles(*args, tile_size=tile_size, chunk_elements=chunk_elements)

    torch_backend = Backend("torch", rasterize, exact=True)
    assert_values_close(torch_backend, rasterize_scene(rasterize, scene), rasterize_scene(rasterize_reference, scene))
    assert_grads_close(torch_backend, scene_grads(rasterize, scene, "colors"),
                       scene_grads(rasterize_reference, scene, "colors"))
