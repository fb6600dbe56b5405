"""What scale-out measures: hand-overs, re-reads, tombstones and the item feed's staleness.

The metrics themselves are the worker's (`worker.observability.metrics.WorkerMetrics`, one
registry per worker); this is where scale-out records into them, so the rest
of the package never asks whether a worker exports any.
"""

from __future__ import annotations

from collections import deque

from worker.observability.metrics import WorkerMetrics

STALENESS_WINDOW = 1024  # folds whose staleness is kept in memory (the histogram keeps all)


class ScaleMetrics:
    """Records scale-out's measures in the worker's metrics (without any: in memory only)."""

    def __init__(self, metrics: WorkerMetrics | None = None) -> None:
        """Record into `metrics`, when given."""
        self.metrics = metrics
        # The last folds' staleness (now - a record's oldest change), for a look from a test or
        # a debugger; bounded, since a worker folds records for as long as it runs. The
        # histogram `recstream_item_sync_staleness_seconds` is the measure.
        self.staleness_s: deque[float] = deque(maxlen=STALENESS_WINDOW)

    def handed_over(self, direction: str, users: int, seconds: float) -> None:
        """Users that went out (a revoke's flush) or came in (an assign's restore), and how long."""
        if self.metrics is not None:
            self.metrics.users_handed_over.labels(direction=direction).inc(users)
            self.metrics.handover_seconds.labels(direction=direction).observe(seconds)

    def reread(self, events: int) -> None:
        """Events a restore re-reads: between the state's marker and the group's commit."""
        if self.metrics is not None:
            self.metrics.rereads.inc(events)

    def tombstones(self, ids: int) -> None:
        """Evicted users deleted from the state topic."""
        if self.metrics is not None:
            self.metrics.state_tombstones.inc(ids)

    def folded(self, staleness_s: list[float]) -> None:
        """Feed records folded in, each with its staleness (now - its oldest change)."""
        self.staleness_s.extend(staleness_s)
        if self.metrics is not None:
            for seconds in staleness_s:
                self.metrics.item_sync_staleness.observe(seconds)
