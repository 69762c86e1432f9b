"""Forward + backward time and peak memory of the CPU render backends on object-like scenes.

Each measurement runs in a fresh process with ``--threads`` intra-op threads (2 by default). Time is the median
over ``--repeats`` runs of ``render()`` plus ``backward()`` of a loss on colours, alphas and depths, after one
warm-up run (colours are RGB, or SH coefficients of ``--sh-degree`` evaluated per camera); the process CPU time is shown beside it (on a shared machine it is the steadier figure for one
thread). Memory is the peak resident set size (``getrusage`` ``ru_maxrss``) minus the resident set size measured
with ``psutil``
after rendering a tiny scene and before the warm-up, so it counts what one render of the scene allocates.

Example:
    python benchmarks/render_bench.py --sizes 1000x128 5000x256 --repeats 5 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import time

import psutil
import torch

DEFAULT_SIZES = ["1000x128", "1000x256", "5000x128", "5000x256", "20000x128", "20000x256"]


def object_scene(num_gaussians: int, size: int, seed: int = 0) -> dict:
    """Gaussians filling the central part of a camera frustum, like a fitted object.

    Depths are uniform in [2, 4]; at 256 px the footprint radii range from a few to tens of pixels
    (half that at 128 px, as for the same object seen at a lower resolution); opacities are uniform in (0.05, 1).
    """
    g = torch.Generator().manual_seed(seed)
    focal = 1.2 * size
    depth = 2.0 + 2.0 * torch.rand(num_gaussians, generator=g)
    xy = (torch.rand(num_gaussians, 2, generator=g) - 0.5) * 0.7 * size / focal * depth[:, None]
    sigma_px = 0.7 * torch.exp(torch.rand(num_gaussians, 1, generator=g) * 2.3)  # 0.7 to 7 px at 256
    anisotropy = torch.exp(torch.rand(num_gaussians, 3, generator=g) * 1.1 - 0.55)
    scales = sigma_px * anisotropy * depth[:, None] / (1.2 * 256)
    return {
        "means": torch.cat([xy, depth[:, None]], dim=-1),
        "quats": torch.randn(num_gaussians, 4, generator=g),
        "scales": scales,
        "opacities": 0.05 + 0.95 * torch.rand(num_gaussians, generator=g),
        "colors": torch.rand(num_gaussians, 3, generator=g),
        "viewmats": torch.eye(4)[None],
        "Ks": torch.tensor([[[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]]]),
        "width": size,
        "height": size,
    }


def sh_coefficients(rgb: torch.Tensor, degree: int, seed: int = 0) -> torch.Tensor:
    """(N, (degree + 1) ** 2, 3) coefficients whose DC term renders ``rgb`` (N, 3), plus small view dependence."""
    from scene4d.render.sh import num_sh_bases, rgb_to_sh0

    g = torch.Generator().manual_seed(seed)
    rest = 0.1 * torch.randn(len(rgb), num_sh_bases(degree) - 1, 3, generator=g)
    return torch.cat([rgb_to_sh0(rgb)[:, None], rest], dim=1)


def _measure(backend: str, num_gaussians: int, size: int, repeats: int, threads: int, sh_degree: int | None,
             queue) -> None:
    from scene4d.render.render import render

    torch.set_num_threads(threads)
    scene = object_scene(num_gaussians, size)
    if sh_degree is not None:
        scene["colors"] = sh_coefficients(scene["colors"], sh_degree)
    params = {k: scene[k].requires_grad_() for k in ("means", "quats", "scales", "opacities", "colors")}
    g = torch.Generator().manual_seed(1)
    weights = [torch.rand(1, size, size, d, generator=g) for d in (3, 1, 1)]

    def step() -> tuple[float, float]:
        start, start_cpu = time.perf_counter(), time.process_time()
        out = render(**{**scene, **params}, sh_degree=sh_degree, backend=backend)
        loss = sum((t * w).sum() for t, w in zip((out.colors, out.alphas, out.depths), weights))
        loss.backward()
        return time.perf_counter() - start, time.process_time() - start_cpu

    tiny = object_scene(10, 16)
    render(**tiny, backend=backend)  # loads the backend and starts thread pools outside the measured memory
    rss_before = psutil.Process().memory_info().rss
    step()
    wall, cpu = zip(*(step() for _ in range(repeats)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queue.put({"ms": 1000 * statistics.median(wall), "cpu_ms": 1000 * statistics.median(cpu),
               "peak_mib": max(peak - rss_before, 0) / 2**20})


def measure(backend: str, num_gaussians: int, size: int, repeats: int, threads: int = 2,
            sh_degree: int | None = None) -> dict:
    """Run one configuration in a fresh process; returns ``{"ms": ..., "cpu_ms": ..., "peak_mib": ...}``."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(backend, num_gaussians, size, repeats, threads, sh_degree, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def available_backends() -> list[str]:
    """``torch`` always, ``cpu-kernel`` when its extension builds here."""
    try:
        from scene4d.render.cpu_kernel import kernel_available
    except ImportError:
        return ["torch"]
    return ["torch", "cpu-kernel"] if kernel_available() else ["torch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=None, help="default: every available CPU backend")
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, help="NxS: N Gaussians, S x S pixels")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--sh-degree", type=int, default=None, help="colours as SH of this degree (default: RGB)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    backends = args.backends or available_backends()

    rows = []
    for spec in args.sizes:
        num_gaussians, size = (int(v) for v in spec.lower().split("x"))
        row = {"n": num_gaussians, "size": size}
        for backend in backends:
            row[backend] = measure(backend, num_gaussians, size, args.repeats, args.threads, args.sh_degree)
        rows.append(row)

    header = ["N", "image"] + [f"{b} {col}" for b in backends for col in ("ms", "CPU ms", "peak MiB")]
    if len(backends) > 1:
        header += [f"{b} speed-up" for b in backends[1:]]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        cells = [str(row["n"]), f"{row['size']}x{row['size']}"]
        formats = (("ms", ".1f"), ("cpu_ms", ".1f"), ("peak_mib", ".0f"))
        cells += [f"{row[b][key]:{fmt}}" for b in backends for key, fmt in formats]
        cells += [f"{row[backends[0]]['ms'] / row[b]['ms']:.2f}x" for b in backends[1:]]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "repeats": args.repeats, "sh_degree": args.sh_degree, "rows": rows}, f,
                      indent=2)


if __name__ == "__main__":
    main()
