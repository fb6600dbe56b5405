"""Whether a large CPU batch learns on one torch thread or on all: whichever measured cheaper.

A second intra-op thread pays only while it has a core of its own: every parallel
region waits for whichever of its threads a neighbour (a broker, a producer on the
same cores) descheduled, and then one thread is faster; with the cores to itself,
two are (docs/benchmarks.md, "2026-12-07, afternoon"). Which holds depends on
neighbours the worker cannot see, and they come and go, so it is measured: per
batch-size class (powers of 4 from `SMALL_BATCH_EVENTS`), a decayed mean of the
learn and train seconds per event on each count. The cheaper runs; every
`EXPLORE_EVERY`-th batch of a class tries the other, and such a try weighs
`EXPLORE_WEIGHT`, so a count that was slow while a neighbour ran is taken back soon
after the neighbour leaves. Each count's first batch in a class is not counted: it
pays for allocations the next ones reuse.
"""

from __future__ import annotations

import structlog

from worker.engine.threads import SMALL_BATCH_EVENTS, threads_for_batch

log = structlog.get_logger("recstream.worker")

EXPLORE_EVERY = 16  # a class's batches between tries of the count it does not prefer
WEIGHT = 0.25  # the newest batch's weight in a class's decayed mean
EXPLORE_WEIGHT = 0.5  # ... when it tried the count its class does not prefer
SIZE_CLASSES = 6  # 128-511, 512-2,047, ..., 131,072 events and more


def size_class(events: int) -> int:
    """The batch-size class of `events` (>= `SMALL_BATCH_EVENTS`): powers of 4, capped."""
    return min(SIZE_CLASSES - 1, (max(1, events // SMALL_BATCH_EVENTS).bit_length() - 1) // 2)


class ThreadTuner:
    """Intra-op threads for each CPU batch: one below `SMALL_BATCH_EVENTS`, else 1 or `most`."""

    def __init__(
        self, most: int, *, explore_every: int = EXPLORE_EVERY, weight: float = WEIGHT
    ) -> None:
        """Choose between one thread and `most` (the configured count; 1: nothing to choose)."""
        if most < 1 or explore_every <= 1 or not 0 < weight <= 1:
            raise ValueError(f"need most >= 1, explore_every >= 2, 0 < weight <= 1: {most}")
        self.most, self.explore_every, self.weight = most, explore_every, weight
        self.cost: list[dict[int, float]] = [{} for _ in range(SIZE_CLASSES)]  # s per event
        self._first: list[set[int]] = [set() for _ in range(SIZE_CLASSES)]  # ran once, uncounted
        self._batches = [0] * SIZE_CLASSES

    def threads(self, events: int) -> int:
        """The count for a batch of `events`: untimed counts first, then the cheaper one."""
        if threads_for_batch(events, self.most) == 1:  # small, or nothing to choose
            return 1
        size = size_class(events)
        cost = self.cost[size]
        for untried in (self.most, 1):
            if untried not in cost:
                return untried
        self._batches[size] += 1
        best = self.preferred(size)
        if self._batches[size] % self.explore_every == 0:
            return 1 if best == self.most else self.most
        return best

    def preferred(self, size: int) -> int:
        """The count with the lower measured cost in class `size` (`most` until both ran)."""
        cost = self.cost[size]
        if 1 not in cost or self.most not in cost:
            return self.most
        return 1 if cost[1] < cost[self.most] else self.most

    def observe(self, threads: int, events: int, seconds: float) -> None:
        """A batch of `events` took `seconds` of compute on `threads` threads."""
        if threads_for_batch(events, self.most) == 1 or threads not in (1, self.most):
            return
        size = size_class(events)
        if threads not in self._first[size]:
            self._first[size].add(threads)
            return
        cost = self.cost[size]
        before = self.preferred(size)
        per_event = seconds / events
        held = cost.get(threads)
        weight = self.weight if threads == before else max(self.weight, EXPLORE_WEIGHT)
        cost[threads] = per_event if held is None else held + weight * (per_event - held)
        after = self.preferred(size)
        if after != before:
            log.info(
                "torch_threads_chosen",
                threads=after,
                batch_events_from=SMALL_BATCH_EVENTS * 4**size,
                us_per_event={n: round(c * 1e6, 2) for n, c in sorted(cost.items())},
            )
