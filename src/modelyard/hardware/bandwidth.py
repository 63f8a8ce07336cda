"""A short main-memory bandwidth test: stream a large array through the CPU with numpy."""

from __future__ import annotations

import time

import numpy as np


def measure_bandwidth(size_mb: int = 256, repeats: int = 5) -> float:
    """Bytes per second read+written copying ``size_mb`` MiB, best of ``repeats``.

    The array is far larger than any cache, so this is main memory; a copy reads and
    writes each byte once, and both count (as STREAM's copy kernel counts them).
    """
    if size_mb < 8 or repeats < 1:
        raise ValueError("size_mb must be >= 8 and repeats >= 1")
    count = size_mb * 1024 * 1024 // 8
    source = np.ones(count, dtype=np.float64)
    target = np.empty_like(source)
    np.copyto(target, source)  # fault the pages in before timing
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - start)
    return 2 * source.nbytes / best
