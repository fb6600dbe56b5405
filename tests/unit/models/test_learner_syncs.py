"""A batch's learn makes no host syncs: counted with torch.profiler on the CPU, enforced on CUDA."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from models.learner import LearnerConfig, OnlineLearner

# The ops that make a device wait for the host: a scalar read, or an output sized by the data.
_SYNCS = ("aten::item", "aten::_local_scalar_dense", "aten::nonzero")
_MOST_PER_BATCH = 2  # issue 20: at most one scalar read (item + _local_scalar_dense) a batch


def _warm_learner(device: torch.device) -> tuple[OnlineLearner, tuple[torch.Tensor, ...]]:
    """A learner past its first batches (tables grown, transitions and recent items held).

    Returns it and one more batch, already on the device and mapped to existing rows.
    """
    learner = OnlineLearner(LearnerConfig(dim=16, negatives=64, seed=0), device)
    rng = np.random.default_rng(0)

    def batch(n: int = 512) -> tuple[torch.Tensor, ...]:
        users = learner.users.rows_for([f"u{x}" for x in rng.integers(0, 300, n)])
        items = learner.items.rows_for([f"i{x}" for x in rng.integers(0, 500, n)])
        return (
            torch.from_numpy(users).to(device),
            torch.from_numpy(items).to(device),
            torch.from_numpy(rng.uniform(0.5, 2.0, n)).float().to(device),
        )

    for step in range(5):
        learner.learn(*batch(), event_ts=1e9 + step)
    ready = batch()
    learner.sync_rows()  # the new batch's ids have rows before the profiled step
    return learner, ready


def _syncs(learner: OnlineLearner, batch: tuple[torch.Tensor, ...], *, check: bool) -> int:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        learner.learn(*batch, event_ts=1e9 + 10, check=check)
    counts = collections.Counter(event.name for event in prof.events())
    return sum(n for name, n in counts.items() if name in _SYNCS or "unique" in name)


def test_a_warm_learn_reads_nothing_back_inside_the_step() -> None:
    """The worker's learn (`check=False`) counts at most 2 sync ops for a whole batch."""
    learner, batch = _warm_learner(torch.device("cpu"))
    assert _syncs(learner, batch, check=False) <= _MOST_PER_BATCH


def test_the_checked_learn_reads_its_flag_once() -> None:
    """With `check` (the default), the one read-back is the refusal flag at the end."""
    learner, batch = _warm_learner(torch.device("cpu"))
    assert _syncs(learner, batch, check=True) <= _MOST_PER_BATCH


def test_a_refused_step_is_flagged_and_changes_no_row() -> None:
    """A NaN weight refuses the step: flagged, no table changes; the ring still takes the clicks."""
    learner, (users, items, weights) = _warm_learner(torch.device("cpu"))
    users_n, items_n = learner.user_table.rows, learner.item_table.rows
    before = (
        learner.user_table.weight[:users_n].clone(),
        learner.item_table.weight[:items_n].clone(),
        learner.context_table.weight[:items_n].clone(),
        learner.item_table.grad_sq[:items_n].clone(),
    )
    written = learner.history.written.clone()
    assert learner.transition is not None
    rings = learner.transition.table.successors.clone()
    weights = weights.clone()
    weights[3] = float("nan")
    stats = learner.learn(users, items, weights, event_ts=1e9 + 10, check=False)
    loss, applied = stats.read()
    assert not applied
    assert np.isnan(loss)
    after = (
        learner.user_table.weight[:users_n],
        learner.item_table.weight[:items_n],
        learner.context_table.weight[:items_n],
        learner.item_table.grad_sq[:items_n],
    )
    for old, new in zip(before, after, strict=True):
        assert torch.equal(old, new)
    assert torch.equal(rings, learner.transition.table.successors)
    # the ring records clicks, not learning: lists exclude them whether or not the step took
    assert (learner.history.written[users] > written[users]).all()
    newest = learner.history.latest(users, 1)[:, 0]
    last = {int(u): int(i) for u, i in zip(users, items, strict=True)}  # each user's last click
    assert all(int(newest[n]) == last[int(u)] for n, u in enumerate(users))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_warm_learn_on_cuda_never_synchronises() -> None:
    """Under `set_sync_debug_mode("error")` a warm learn on the GPU raises on any sync."""
    learner, batch = _warm_learner(torch.device("cuda"))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        stats = learner.learn(*batch, event_ts=1e9 + 10, check=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert stats.read()[1]
