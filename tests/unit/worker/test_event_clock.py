"""The batch clock's bound: the least newest event time over partitions still behind."""

from __future__ import annotations

import math

from stream.batch import DecodedBatch
from worker.loop.event_clock import PartitionTimes


def _batch(*events: tuple[int, float]) -> DecodedBatch:
    """Events as (partition, event time)."""
    batch = DecodedBatch()
    for partition, ts in events:
        batch.users.append("u")
        batch.items.append("i")
        batch.event_ts.append(ts)
        batch.weights.append(1.0)
        batch.partitions.append(partition)
    return batch


def test_a_partition_behind_holds_the_clock_at_its_newest_event() -> None:
    """Partition 0 ran ahead to t=900 while 1 has reached 20 (its 5 came late)."""
    times = PartitionTimes()
    times.fold(_batch((0, 100.0), (0, 900.0), (1, 20.0), (1, 5.0)))
    assert times.watermark({0, 1}) == 20.0
    assert times.watermark({0}) == 900.0  # 1 was read to its end: it holds nothing back
    times.fold(_batch((0, 950.0)))  # a batch of 0 alone does not forget 1
    assert times.watermark({0, 1}) == 20.0


def test_nothing_behind_bounds_nothing_and_an_unread_partition_holds_it_still() -> None:
    """No partition behind: no bound; one behind but never read: the clock stays."""
    times = PartitionTimes()
    times.fold(_batch((0, 100.0)))
    assert times.watermark(set()) == math.inf
    assert times.watermark({0, 3}) == -math.inf


def test_revoked_partitions_are_forgotten() -> None:
    """A partition handed to another worker, then back, starts with no stale time."""
    times = PartitionTimes()
    times.fold(_batch((0, 100.0), (1, 20.0)))
    times.forget([1])
    assert times.newest == {0: 100.0}
