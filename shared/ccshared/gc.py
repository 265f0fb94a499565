"""Garbage-collector settings for request-serving processes.

CPython's default (a young-generation collection every 700 net allocations) makes a busy
async service collect hundreds of times a second, and every so often a full collection walks
every object the process holds (caches, pools, modules) while all requests wait: on intake's
benchmark these pauses were the whole p99 (100 ms, 28 ms without them). Services therefore
collect the young generation less often and, once started, move what start-up allocated out of
the collector's sight (`gc.freeze`), as large CPython deployments do. Cycles are still
collected; memory is bounded by the threshold.
"""

from __future__ import annotations

import gc

DEFAULT_GEN0_THRESHOLD = 50_000


def tune_gc(gen0_threshold: int = DEFAULT_GEN0_THRESHOLD) -> None:
    """0 leaves CPython's defaults."""
    if gen0_threshold <= 0:
        return
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, max(gen1, 20), max(gen2, 100))


def freeze_startup_objects() -> None:
    """Call once start-up is done: a full collection first, so no garbage is frozen."""
    gc.collect()
    gc.freeze()
