"""Warm-up before ready: the device code paths run once on a scratch engine.

The first batches on a GPU pay for CUDA context and cuBLAS handle creation,
kernel loading and the caching allocator's first blocks: the demo's p99 came
from them (docs/benchmarks.md, "Figures behind the code"). A service should
pay that before it says it is ready, not on its first clicks. So before the worker exists (and
`/readyz` can answer 200), a throwaway engine built like the real one learns
and ranks a few synthetic batches and is dropped: the real model's state,
random generator and row maps are never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from stream.payload import ListEncoder
from worker.engine.engine import Engine

_USERS = 64
_ITEMS = 256
_BATCHES = 3  # the first allocates the rows; the later ones take the warm paths


def warm_up(make_engine: Callable[[], Engine], batch_size: int) -> float:
    """Learn and rank `_BATCHES` synthetic batches on a fresh engine; the seconds it took.

    `make_engine` builds an engine as the worker's is built, with no restored state
    and admission at the first click (so the synthetic events are learned).
    """
    started = time.perf_counter()
    engine = make_engine()
    rng = np.random.default_rng(0)
    n = max(1, min(batch_size, 1024))
    encoder = ListEncoder()
    try:
        for step in range(_BATCHES):
            users = [f"warmup-u{u}" for u in rng.integers(0, _USERS, n)]
            items = [f"warmup-i{i}" for i in rng.integers(0, _ITEMS, n)]
            event_ts = np.full(n, 1.0 + step, dtype=np.float64)
            weights = np.ones(n, dtype=np.float32)
            learned = engine.learn(users, items, event_ts, weights)
            ranked = engine.rank(learned.touched)
            encoder.encode_lists(engine.lists(ranked), time.time(), engine.index.version)
            engine.train_ranker()
        engine.rank_cold_start()
    finally:
        engine.index.close()
    return time.perf_counter() - started
