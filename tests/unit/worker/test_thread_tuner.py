"""Unit tests for `worker.loop.thread_tuner`: a large CPU batch runs on the cheaper count."""

from __future__ import annotations

import pytest

from worker.engine.threads import SMALL_BATCH_EVENTS
from worker.loop.thread_tuner import EXPLORE_WEIGHT, SIZE_CLASSES, ThreadTuner, size_class

LARGE = 16 * SMALL_BATCH_EVENTS


def _run(tuner: ThreadTuner, events: int, cost: dict[int, float], batches: int) -> list[int]:
    """`batches` batches of `events`, each taking `cost[threads]` seconds per event."""
    chosen = []
    for _ in range(batches):
        threads = tuner.threads(events)
        tuner.observe(threads, events, cost[threads] * events)
        chosen.append(threads)
    return chosen


def test_size_classes_are_powers_of_four_from_the_small_batch() -> None:
    """128-511 events share a class, 512-2,047 the next, and the largest are capped."""
    small = SMALL_BATCH_EVENTS
    assert size_class(small) == size_class(4 * small - 1) == 0
    assert size_class(4 * small) == size_class(16 * small - 1) == 1
    assert size_class(16 * small) == 2
    assert size_class(1 << 40) == SIZE_CLASSES - 1


def test_small_batches_and_a_single_thread_need_no_choice() -> None:
    """Below the small-batch size, or with one thread configured, it is always one thread."""
    assert ThreadTuner(4).threads(SMALL_BATCH_EVENTS - 1) == 1
    lone = ThreadTuner(1)
    assert _run(lone, LARGE, {1: 1.0}, 5) == [1] * 5
    assert lone.cost[size_class(LARGE)] == {}


@pytest.mark.parametrize(("cheaper", "dearer"), [(1, 2), (2, 1)])
def test_it_settles_on_the_cheaper_count_and_tries_the_other_now_and_then(
    cheaper: int, dearer: int
) -> None:
    """Both counts are timed (each first batch uncounted), then the cheaper runs.

    The other is tried every `explore_every`-th batch.
    """
    tuner = ThreadTuner(2, explore_every=8)
    chosen = _run(tuner, LARGE, {cheaper: 1e-5, dearer: 3e-5}, 4 + 32)
    assert chosen[:4] == [2, 2, 1, 1]
    settled = chosen[4:]
    assert settled.count(dearer) == 4  # batches 8, 16, 24 and 32 of the class
    assert all(threads == cheaper for n, threads in enumerate(settled, 1) if n % 8)
    assert tuner.preferred(size_class(LARGE)) == cheaper


def test_it_follows_the_neighbours_when_they_change() -> None:
    """Once the count it prefers slows (a neighbour took the core), it moves to the other."""
    tuner = ThreadTuner(2, explore_every=4)
    _run(tuner, LARGE, {1: 2e-5, 2: 1e-5}, 20)
    assert tuner.preferred(size_class(LARGE)) == 2
    _run(tuner, LARGE, {1: 2e-5, 2: 6e-5}, 20)
    assert tuner.preferred(size_class(LARGE)) == 1


def test_a_first_batch_is_not_counted_and_a_try_weighs_more() -> None:
    """A count's first batch in a class (allocations) is left out; a try weighs more.

    A try of the count not preferred moves its mean by `EXPLORE_WEIGHT`, not `WEIGHT`.
    """
    tuner = ThreadTuner(2, weight=0.25)
    size = size_class(LARGE)
    for threads, per_event in [(2, 9.0), (2, 1.0), (1, 9.0), (1, 2.0)]:
        tuner.observe(threads, LARGE, per_event * LARGE)
    assert tuner.cost[size] == {2: 1.0, 1: 2.0}
    tuner.observe(1, LARGE, 0.0)  # a try of the dearer count
    assert tuner.cost[size][1] == 2.0 * (1 - EXPLORE_WEIGHT)
    tuner.observe(2, LARGE, 0.0)  # the preferred count: the usual weight
    assert tuner.cost[size][2] == 1.0 * (1 - 0.25)


def test_each_size_class_learns_apart() -> None:
    """Large batches may want all threads while mid-sized ones want one."""
    tuner = ThreadTuner(2)
    mid, large = 4 * SMALL_BATCH_EVENTS, 64 * SMALL_BATCH_EVENTS
    _run(tuner, mid, {1: 1e-5, 2: 2e-5}, 10)
    _run(tuner, large, {1: 2e-5, 2: 1e-5}, 10)
    assert tuner.preferred(size_class(mid)) == 1
    assert tuner.preferred(size_class(large)) == 2


def test_observations_it_did_not_ask_for_are_ignored() -> None:
    """A small batch, or a count that is neither one nor all, teaches nothing."""
    tuner = ThreadTuner(4)
    tuner.observe(1, SMALL_BATCH_EVENTS - 1, 1.0)
    tuner.observe(3, LARGE, 1.0)
    assert all(cost == {} for cost in tuner.cost)


@pytest.mark.parametrize(
    "kwargs", [{"most": 0}, {"most": 2, "explore_every": 1}, {"most": 2, "weight": 0.0}]
)
def test_bad_arguments_are_refused(kwargs: dict[str, float]) -> None:
    """A count below one, no room to settle, or a mean that never moves: a clear error."""
    most = int(kwargs.pop("most"))
    with pytest.raises(ValueError, match="most >= 1"):
        ThreadTuner(most, **kwargs)  # type: ignore[arg-type]
