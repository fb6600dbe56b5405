"""Retrying transient faults at the edges, with capped exponential backoff, until stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import structlog

from stream.errors import TransientError
from worker.errors import StopRequestedError
from worker.observability.metrics import Heartbeat, WorkerMetrics

T = TypeVar("T")
log = structlog.get_logger("recstream.worker")

BACKOFF_START_S = 0.1
BACKOFF_CAP_S = 5.0


class Retry:
    """Runs an edge's action until it succeeds, a non-transient error escapes, or a stop.

    Thread-safe: the loop and the publish thread share one. Waiting beats the
    heartbeat, since a loop that retries is alive, just blocked on a dependency.
    """

    def __init__(self, stop: threading.Event, metrics: WorkerMetrics, heartbeat: Heartbeat) -> None:
        """Retry until `stop` is set; count retries per stage in `metrics`."""
        self._stop = stop
        self._metrics = metrics
        self._heartbeat = heartbeat

    def __call__(self, stage: str, action: Callable[[], T]) -> T:
        """Run `action`; `StopRequestedError` if a stop comes while waiting to retry."""
        delay = BACKOFF_START_S
        while True:
            try:
                return action()
            except TransientError as exc:
                self._metrics.retries.labels(stage=stage).inc()
                log.warning("transient_failure", stage=stage, error=str(exc), retry_in_s=delay)
                if self._stop.wait(delay):
                    raise StopRequestedError(stage) from exc
                self._heartbeat.beat()
                delay = min(delay * 2, BACKOFF_CAP_S)
