"""Wall time and peak memory of a block of code, for the manifest and the benchmarks."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import psutil
import torch


@dataclass
class Usage:
    """Measured usage of one block.

    Attributes:
        wall_s: elapsed wall-clock seconds.
        peak_rss_mb: highest resident set size of this process seen during the block (sampled every
            ``interval_s``; MiB).
        start_rss_mb: resident set size when the block started (MiB).
        peak_cuda_mb: peak CUDA memory allocated by torch during the block (MiB), or None without CUDA.
    """

    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    start_rss_mb: float = 0.0
    peak_cuda_mb: float | None = None


@contextmanager
def measure(interval_s: float = 0.02) -> Iterator[Usage]:
    """Measure the enclosed block; the yielded :class:`Usage` is filled in when the block exits."""
    process = psutil.Process()
    usage = Usage(start_rss_mb=process.memory_info().rss / 2**20)
    peak = [process.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval_s):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    sampler.start()
    try:
        yield usage
    finally:
        stop.set()
        sampler.join()
        usage.wall_s = time.perf_counter() - start
        usage.peak_rss_mb = max(peak[0], process.memory_info().rss) / 2**20
        if cuda:
            usage.peak_cuda_mb = torch.cuda.max_memory_allocated() / 2**20
