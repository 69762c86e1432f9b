"""Compiled CPU tile rasterizer (C++ and OpenMP), same results as :func:`rasterize_reference`.

The C++ sources in ``csrc/`` are compiled on first use with :func:`torch.utils.cpp_extension.load` (C++20,
which PyTorch's headers require) and cached in the torch extensions directory (``$TORCH_EXTENSIONS_DIR``, by
default ``~/.cache/torch_extensions``). Pre-build it with ``python -m scene4d.render.cpu_kernel --build``.

The kernel bins footprints into 16x16 tiles, sorts each tile's Gaussians by depth (ties by index) and composites
front to back, one OpenMP task per (camera, tile), a SIMD vector of a tile row at a time. Its backward is the 3DGS
one (back to front, recovering the transmittance from the final one) with per-intersection partial sums reduced
in a fixed order, so gradients do not depend on the thread count. It uses ``torch.get_num_threads()`` threads.
The EWA projection and the SH colours are compiled too (:func:`project_gaussians_cpu_kernel` and
:func:`sh_colors_cpu_kernel`: the rules, outputs and gradients of
:func:`~scene4d.render.projection.project_gaussians` and :func:`~scene4d.render.sh.sh_colors`).
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path
from types import ModuleType

import torch

from scene4d.render.projection import ProjectedGaussians

logger = logging.getLogger(__name__)

_SOURCES = [Path(__file__).parent / "csrc" / name
            for name in ("projection.cpp", "sh.cpp", "binning.cpp", "forward.cpp", "backward.cpp", "bindings.cpp")]
# ATen's vector types are compiled for the widest instruction set PyTorch itself uses on this CPU. The build is
# cached under a name per instruction set, so a cache shared with an older CPU never loads the wrong one.
_SIMD_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-DCPU_CAPABILITY=AVX512",
               "-DCPU_CAPABILITY_AVX512"],
    "AVX2": ["-mavx2", "-mfma", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"],
}


def build_kernel(verbose: bool = False) -> ModuleType:
    """Compile (or load the cached build of) the extension; raises on compiler failure."""
    # Importing cpp_extension warns "No CUDA runtime is found" on every CPU-only machine; this build needs none.
    import_logger = logging.getLogger("torch.utils.cpp_extension")
    level = import_logger.level
    import_logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        import_logger.setLevel(level)

    capability = torch.backends.cpu.get_cpu_capability()
    simd = _SIMD_FLAGS.get(capability, [])
    return cpp_extension.load(
        name=f"scene4d_cpu_rasterizer_{capability.lower() if simd else 'generic'}",
        sources=[str(path) for path in _SOURCES],
        # No FMA contraction: each product and sum rounds as in the PyTorch reference.
        extra_cflags=["-O3", "-fopenmp", "-ffp-contract=off", *simd],
        extra_ldflags=["-fopenmp"],
        verbose=verbose,
    )


@functools.cache
def _extension() -> ModuleType | None:
    try:
        return build_kernel()
    except Exception as error:  # noqa: BLE001 - any build failure means: fall back to PyTorch
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        logger.warning("CPU rasterizer kernel failed to build (%s); using the PyTorch rasterizer instead", first_line)
        return None


def kernel_available() -> bool:
    """Whether the compiled kernel builds and loads here (tried once per process)."""
    return _extension() is not None


class _RasterizeKernel(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means2d, conics, opacities, colors, depths, backgrounds, radii, width, height):
        bg = backgrounds if backgrounds is not None else means2d.new_empty(0)
        out_colors, out_alphas, out_depths, *state = _extension().forward(
            means2d, conics, opacities, colors, depths, radii, bg, width, height
        )
        ctx.save_for_backward(bg, out_alphas, out_depths, *state)
        ctx.dims = (*depths.shape, width, height)
        ctx.has_background = backgrounds is not None
        return out_colors, out_alphas, out_depths

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, v_colors, v_alphas, v_depths):
        tensors = [*ctx.saved_tensors, v_colors.contiguous(), v_alphas.contiguous(), v_depths.contiguous()]
        v_means2d, v_conics, v_opacities, v_colors_in, v_depths_in, v_bg = _extension().backward(tensors, *ctx.dims)
        v_bg = v_bg if ctx.has_background else None
        return v_means2d, v_conics, v_opacities, v_colors_in, v_depths_in, v_bg, None, None, None


class _ProjectKernel(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane, eps2d):
        means2d, conics, depths, radii = _extension().project_forward(
            means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane, eps2d)
        ctx.save_for_backward(means, quats, scales, viewmats, Ks)
        ctx.dims = (width, height, near_plane, far_plane, eps2d)
        ctx.mark_non_differentiable(radii)
        return means2d, conics, depths, radii

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, v_means2d, v_conics, v_depths, _v_radii):
        camera_grads = ctx.needs_input_grad[4] or ctx.needs_input_grad[5]
        upstream = [v.contiguous() for v in (v_means2d, v_conics, v_depths)]
        grads = _extension().project_backward([*ctx.saved_tensors, *upstream], *ctx.dims, camera_grads)
        v_means, v_quats, v_scales = grads[:3]
        v_viewmats = grads[3] if ctx.needs_input_grad[4] else None
        v_Ks = grads[4] if ctx.needs_input_grad[5] else None
        return v_means, v_quats, v_scales, None, v_viewmats, v_Ks, None, None, None, None, None


def project_gaussians_cpu_kernel(
    means: torch.Tensor,  # (N, 3)
    quats: torch.Tensor,  # (N, 4)
    scales: torch.Tensor,  # (N, 3)
    opacities: torch.Tensor,  # (N,)
    viewmats: torch.Tensor,  # (C, 4, 4)
    Ks: torch.Tensor,  # (C, 3, 3)
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
) -> ProjectedGaussians:
    """:func:`~scene4d.render.projection.project_gaussians` compiled: same arguments, outputs and gradients (to
    means, quats, scales, opacities, viewmats and Ks).

    Returns:
        :class:`ProjectedGaussians` with leading dims ``(C, N)``.

    Raises:
        ValueError: inputs of mixed dtypes or not on the CPU.
        RuntimeError: if the kernel does not build here.
    """
    inputs = [means, quats, scales, opacities, viewmats, Ks]
    dtypes = {t.dtype for t in inputs}
    if len(dtypes) != 1 or not dtypes <= {torch.float32, torch.float64}:
        raise ValueError(f"expected float32 or float64 inputs of one dtype, got {sorted(map(str, dtypes))}")
    devices = {t.device.type for t in inputs}
    if devices != {"cpu"}:
        raise ValueError(f"the CPU kernel needs CPU tensors, got devices {sorted(devices)}")
    if not kernel_available():
        raise RuntimeError("the CPU rasterizer kernel is not available here; use the 'torch' backend")
    means2d, conics, depths, radii = _ProjectKernel.apply(
        *(t.contiguous() for t in inputs), int(width), int(height), float(near_plane), float(far_plane), float(eps2d))
    opac = opacities[None, :].expand_as(depths)
    return ProjectedGaussians(means2d=means2d, conics=conics, depths=depths, radii=radii, opacities=opac)


class _ShKernel(torch.autograd.Function):
    @staticmethod
    def forward(ctx, coeffs, means, cam_centers, degree):
        ctx.save_for_backward(coeffs, means, cam_centers)
        ctx.degree = degree
        return _extension().sh_forward(coeffs, means, cam_centers, degree)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, v_colors):
        v_coeffs, v_means, v_centers = _extension().sh_backward(*ctx.saved_tensors, v_colors.contiguous(), ctx.degree)
        return v_coeffs, v_means, v_centers, None


def sh_colors_cpu_kernel(
    degree: int,
    coeffs: torch.Tensor,  # (N, K, 3)
    means: torch.Tensor,  # (N, 3)
    cam_centers: torch.Tensor,  # (C, 3)
) -> torch.Tensor:
    """:func:`~scene4d.render.sh.sh_colors` compiled: same arguments, (C, N, 3) colours and gradients.

    Raises:
        ValueError: a degree outside 0 to 3, inputs of mixed dtypes or not on the CPU.
        RuntimeError: if the kernel does not build here.
    """
    if not 0 <= degree <= 3:
        raise ValueError(f"sh degree must be in [0, 3], got {degree}")
    inputs = [coeffs, means, cam_centers]
    dtypes = {t.dtype for t in inputs}
    if len(dtypes) != 1 or not dtypes <= {torch.float32, torch.float64}:
        raise ValueError(f"expected float32 or float64 inputs of one dtype, got {sorted(map(str, dtypes))}")
    devices = {t.device.type for t in inputs}
    if devices != {"cpu"}:
        raise ValueError(f"the CPU kernel needs CPU tensors, got devices {sorted(devices)}")
    if not kernel_available():
        raise RuntimeError("the CPU rasterizer kernel is not available here; use the 'torch' backend")
    return _ShKernel.apply(*(t.contiguous() for t in inputs), int(degree))


def _check_inputs(projected: ProjectedGaussians, colors: torch.Tensor, width: int, height: int,
                  backgrounds: torch.Tensor | None) -> None:
    if projected.depths.dim() != 2:
        raise ValueError(f"projected.depths: expected (C, N), got {tuple(projected.depths.shape)}")
    c, n = projected.depths.shape
    expected = {"means2d": (c, n, 2), "conics": (c, n, 3), "radii": (c, n, 2), "opacities": (c, n)}
    for name, shape in expected.items():
        got = tuple(getattr(projected, name).shape)
        if got != shape:
            raise ValueError(f"projected.{name}: expected {shape}, got {got}")
    if colors.dim() != 3 or colors.shape[:2] != (c, n) or colors.shape[2] < 1:
        raise ValueError(f"colors: expected ({c}, {n}, D) with D >= 1, got {tuple(colors.shape)}")
    if backgrounds is not None and tuple(backgrounds.shape) != (c, colors.shape[2]):
        raise ValueError(f"backgrounds: expected ({c}, {colors.shape[2]}), got {tuple(backgrounds.shape)}")
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    floats = [projected.means2d, projected.conics, projected.opacities, projected.depths, colors]
    floats += [backgrounds] if backgrounds is not None else []
    dtypes = {t.dtype for t in floats}
    if len(dtypes) != 1 or not dtypes <= {torch.float32, torch.float64}:
        raise ValueError(f"expected float32 or float64 inputs of one dtype, got {sorted(map(str, dtypes))}")
    devices = {t.device.type for t in floats + [projected.radii]}
    if devices != {"cpu"}:
        raise ValueError(f"the CPU kernel needs CPU tensors, got devices {sorted(devices)}")


def rasterize_cpu_kernel(
    projected: ProjectedGaussians,
    colors: torch.Tensor,  # (C, N, D)
    width: int,
    height: int,
    backgrounds: torch.Tensor | None = None,  # (C, D)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite projected Gaussians with the compiled kernel; differentiable in every float input.

    Args:
        projected: output of :func:`~scene4d.render.projection.project_gaussians`, leading dims (C, N).
        colors: (C, N, D) per-camera colours (or any features), D >= 1.
        width, height: image size.
        backgrounds: (C, D) colour behind everything, or None for zeros.

    Returns:
        ``(colors, alphas, depths)`` of shapes (C, H, W, D), (C, H, W, 1) and (C, H, W, 1), as
        :func:`~scene4d.render.reference.rasterize_reference` returns them.

    Raises:
        RuntimeError: if the kernel does not build here (check :func:`kernel_available` first).
    """
    _check_inputs(projected, colors, width, height, backgrounds)
    if not kernel_available():
        raise RuntimeError("the CPU rasterizer kernel is not available here; use the 'torch' backend")
    return _RasterizeKernel.apply(
        projected.means2d.contiguous(),
        projected.conics.contiguous(),
        projected.opacities.contiguous(),
        colors.contiguous(),
        projected.depths.contiguous(),
        backgrounds.contiguous() if backgrounds is not None else None,
        projected.radii.to(torch.int32).contiguous(),
        int(width),
        int(height),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="compile the kernel now and print where it lives")
    args = parser.parse_args(argv)
    if not args.build:
        parser.print_help()
        return 2
    try:
        module = build_kernel(verbose=False)
    except Exception as error:  # noqa: BLE001 - report any build failure and exit non-zero
        print(f"building the CPU rasterizer kernel failed:\n{error}", file=sys.stderr)
        return 1
    print(f"built {module.__name__} at {Path(module.__file__).parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
