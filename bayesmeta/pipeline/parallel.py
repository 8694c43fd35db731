"""Run the output jobs of a report (figures to rasterise, results to save) in parallel.

Rasterising ~60 figures and writing ~60 netCDF files takes as long as the fits themselves, and
each job is independent, so they are spread over worker processes. Workers are *forked* after
all fitting is done: the jobs (closures over the results) are inherited, not pickled, and only
their small outputs (PNG bytes, file names, notes) travel back. Fork also spares the user the
"main module re-imported" trap of spawn-based pools when ``run_spec`` is called from a script.

Where fork is unavailable (not POSIX), with ``workers <= 1``, or for a single job, the jobs run
in this process. A pool in which no job finishes for ``timeout`` seconds (each job takes a few
seconds at most) is terminated and the unfinished jobs run here instead (recorded), so a worker
stuck on a lock inherited at fork costs at most ``timeout`` seconds and never hangs the run.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from typing import Any

#: the jobs of the pool being run; inherited by the forked workers
_JOBS: list[Callable[[], Any]] = []


def _run(i: int) -> tuple[int, Any]:
    return i, _JOBS[i]()


def run_jobs(jobs: Sequence[Callable[[], Any]], workers: int, *, timeout: float = 120.0
             ) -> tuple[list[Any], list[str]]:
    """Results of ``jobs`` in order, and notes (e.g. a fallback to serial execution).

    An exception raised by a job propagates (as it would in the serial loop)."""
    global _JOBS
    notes: list[str] = []
    if workers <= 1 or len(jobs) < 2 or "fork" not in mp.get_all_start_methods():
        return [job() for job in jobs], notes
    results: dict[int, Any] = {}
    _JOBS = list(jobs)
    start = time.perf_counter()
    try:
        ctx = mp.get_context("fork")
        with ctx.Pool(min(workers, len(jobs))) as pool:
            pending = pool.imap_unordered(_run, range(len(jobs)), chunksize=1)
            while len(results) < len(jobs):
                left = timeout - (time.perf_counter() - start)
                try:
                    i, value = pending.next(timeout=max(left, 0.0))
                except mp.TimeoutError:
                    pool.terminate()
                    notes.append(f"output workers made no progress for {timeout:g} s; "
                                 f"{len(jobs) - len(results)} job(s) were run in the main "
                                 "process instead")
                    break
                results[i] = value
                start = time.perf_counter()  # the timeout bounds a stall, not the whole pool
    finally:
        _JOBS = []
    for i, job in enumerate(jobs):
        if i not in results:
            results[i] = job()
    return [results[i] for i in range(len(jobs))], notes
