"""Timing helper shared by the benchmark scripts (run as ``python benchmarks/<script>.py``,
which puts this folder on ``sys.path``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_ms(func: Callable[[], Any], reps: int) -> float:
    """Median wall time of ``reps`` calls of ``func``, in milliseconds (the median, not the
    mean: other processes on a shared machine add one-sided noise)."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        func()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)
