"""Process-parallel map for the per-clip work (decoding, features, figures)."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm import tqdm

from genreflow.core.quiet import import_tensorflow


def parallel_map(fn: Callable[[Any], Any], jobs: Sequence, workers: int, *,
                 desc: str | None = None, unit: str = "clip", chunksize: int = 4,
                 min_jobs: int = 2) -> list:
    """``[fn(j) for j in jobs]`` in up to ``workers`` processes, with a progress bar if ``desc``.

    Workers are forked, except once TensorFlow is loaded in this process (tests,
    the benchmark script): forking its running threads is unsafe, so they then
    start from a clean ``forkserver`` (which needs an ``if __name__ == "__main__"``
    guard in the calling script), and import TensorFlow quietly first: its start-up lines
    (oneDNN notice) would otherwise reach the user's stderr once per worker. Fewer than ``min_jobs`` jobs, or one worker,
    run in this process.
    """
    workers = max(1, min(workers, os.cpu_count() or 1, len(jobs)))
    bar = {"total": len(jobs), "desc": desc, "unit": unit, "disable": desc is None}
    if workers == 1 or len(jobs) < min_jobs:
        return [fn(j) for j in tqdm(jobs, **bar)]
    fresh = "tensorflow" in sys.modules
    ctx = multiprocessing.get_context("forkserver" if fresh else "fork")
    with ProcessPoolExecutor(workers, mp_context=ctx,
                             initializer=import_tensorflow if fresh else None) as pool:
        return list(tqdm(pool.map(fn, jobs, chunksize=chunksize), **bar))
