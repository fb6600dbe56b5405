"""A batch's learn and rank read back from the device at most twice (issue 20).

Counted with torch.profiler on the CPU over the path a device runs (static
shapes: the seen width and the distinct clicked items are not read from the
data), and enforced on CUDA under `set_sync_debug_mode("error")`.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from index.exact import ExactIndex
from models.history import SeenHistory
from models.learner import LearnerConfig, OnlineLearner
from worker.engine.engine import Engine

_SYNCS = ("aten::item", "aten::_local_scalar_dense", "aten::nonzero")
_MOST_PER_BATCH = 2  # one scalar read (item + _local_scalar_dense): the step's loss and flag

Batch = tuple[list[str], list[str], np.ndarray, np.ndarray]


def _warm_engine(device: torch.device) -> tuple[Engine, Batch]:
    """An Engine past its first batches (every id has a row, the ranker has learned)."""
    learner = OnlineLearner(
        LearnerConfig(dim=16, negatives=64, seed=0), device, SeenHistory(64, device)
    )
    engine = Engine(learner, ExactIndex(), 10, static_shapes=True)
    rng = np.random.default_rng(0)

    def batch(step: int, n: int = 512) -> Batch:
        users = [f"u{x}" for x in rng.integers(0, 300, n)]
        items = [f"i{x}" for x in rng.integers(0, 500, n)]
        return users, items, np.full(n, 1e9 + step), np.ones(n, dtype=np.float32)

    for step in range(6):
        engine.rank(engine.learn(*batch(step)).touched)
    return engine, batch(6)


def _syncs(engine: Engine, batch: Batch) -> int:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        engine.rank(engine.learn(*batch).touched)
    counts = collections.Counter(event.name for event in prof.events())
    return sum(n for name, n in counts.items() if name in _SYNCS or "unique" in name)


def test_a_warm_batch_learns_and_ranks_with_one_read_back() -> None:
    """Learn (the ranker taught first), rank: at most 2 sync ops for the whole batch."""
    engine, batch = _warm_engine(torch.device("cpu"))
    assert _syncs(engine, batch) <= _MOST_PER_BATCH


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_warm_batch_on_cuda_syncs_only_for_its_results() -> None:
    """On the GPU the rank makes no sync at all: the one wait is copying the lists down."""
    engine, batch = _warm_engine(torch.device("cuda"))
    learned = engine.learn(*batch)
    hidden = engine.unavailable_items()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        rows, scores = engine.stages.rank(learned.touched, 10, hidden)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert rows.shape == scores.shape == (learned.touched.numel(), 10)
