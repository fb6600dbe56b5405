"""The rank stage per user at growing catalogues: candidates, features and the ranker.

Stage 1 proposes a bounded union per user, so the rank stage should cost about
the same per user at 10^6 items as at 10^4, with the vector source on an IVF
index past the first size (an exact scan grows with the catalogue, which is
what the two stages replaced). The baseline is the 10^4 catalogue's own rate.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from index.exact import ExactIndex
from index.ivf import IVFIndex
from models.history import SeenHistory
from models.learner import LearnerConfig, OnlineLearner
from worker.engine.engine import Engine
from worker.tools.bench.stages import Row
from worker.tools.bench.timing import median_seconds

USERS = 512  # touched users per ranked batch, as at ~10k events/s in 50 ms batches
RANK_SIZES = [10_000, 100_000, 1_000_000]  # catalogues the rank stage is measured at
EXACT_UP_TO = 10_000  # items: past this the vector source searches an IVF index


def _engine(items: int, device: torch.device) -> Engine:
    """An Engine with `items` live items (random vectors) and users with 20 clicks each."""
    learner = OnlineLearner(LearnerConfig(negatives=128), device, SeenHistory(1024, device))
    # Exact while the clicks are learned (its refresh is free); an IVF is built on the result.
    engine = Engine(learner, ExactIndex(), top_k=50)
    rng = np.random.default_rng(0)
    ids = [str(n) for n in range(items)]
    learner.items.rows_for(ids)
    learner.sync_rows()
    gen = torch.Generator(device="cpu").manual_seed(1)
    learner.item_table.weight[:items, :-1] = torch.randn(items, 64, generator=gen).to(device) * 0.1
    # Every item live, its click count falling off as Zipf 0.9 (the outside load's), so the
    # bias column holds a real popularity prior as it would in production.
    every = torch.arange(items, device=device)
    counts = 1.0 + 1000.0 / (every + 1.0).pow(0.9)
    learner.count_clicks(every, counts.float(), 900.0)
    clicks = 20 * USERS
    users = [f"u{n}" for n in rng.integers(0, USERS, clicks)]
    picked = (rng.zipf(1.1, clicks) - 1) % items
    for start in range(0, clicks, 1024):
        stop = start + 1024
        engine.learn(
            users[start:stop],
            [ids[i] for i in picked[start:stop]],
            np.full(stop - start, 1000.0 + start),
            np.ones(stop - start, dtype=np.float32),
        )
    if items > EXACT_UP_TO:  # built on the learned matrix, as a periodic rebuild would be
        index = IVFIndex(nprobe=16, use_gpu=device.type == "cuda")
        index.refresh(learner.item_vectors(), torch.arange(items, device=device))
        index.wait_for_build(timeout=600.0)  # a 2-core machine trains 10^6 items slowly
        index.refresh(learner.item_vectors(), torch.empty(0, dtype=torch.long, device=device))
        engine.index = engine.stages.index = index
    return engine


def bench_rank(device: torch.device, sizes: list[int], repeats: int) -> list[Row]:
    """Users ranked per second by `Engine.rank`, per catalogue size, against the smallest."""
    rows: list[Row] = []
    base = 0.0
    for size in sizes:
        engine = _engine(size, device)
        users = torch.arange(len(engine.learner.users), device=device)
        seconds = median_seconds(partial(engine.rank, users), repeats, device)
        rate = users.numel() / seconds
        base = base or rate
        kind = engine.index.kind
        rows.append(
            Row(
                "rank",
                f"two stages, {size:,} items ({kind}), {users.numel()} users",
                rate,
                "users/s",
                f"the same at {sizes[0]:,} items",
                base,
                f"candidates <= {engine.stages.config.width} per user",
            )
        )
        engine.index.close()
    return rows
