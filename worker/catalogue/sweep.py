"""The catalogue sweep: a removal reaches the lists already stored, within a bound.

The loop applies a `remove` or `ban` before it ranks again, so every list written after
it leaves the item out; the lists written before it are this thread's job. It sweeps at
once when told of newly hidden items (`hide`), batching what arrives during a sweep into
the next one, so the time from a removal to no stored list naming it is one sweep plus
at most the sweep under way. `RECSTREAM_CONTROL_SWEEP_S` is that bound: a sweep that ends
later is logged as `catalogue_sweep_overdue` and counted, for an operator to act on (more
lists than the bound allows: a faster Redis, or more time).

Off the hot path on purpose: its own thread and its own Redis connection, nothing the
loop waits for. A transient Redis fault is retried with capped backoff; the items stay
pending until a sweep of them finishes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import structlog

from stream.errors import StreamError
from stream.list_sweep import ListSweeper, SweepStats
from worker.observability.metrics import WorkerMetrics

log = structlog.get_logger("recstream.control")

_BACKOFF_START_S = 0.1
_BACKOFF_CAP_S = 5.0


class CatalogueSweep:
    """A thread that rewrites stored lists naming items the operator hid."""

    def __init__(self, sweeper: ListSweeper, bound_s: float, metrics: WorkerMetrics) -> None:
        """Sweep with `sweeper`; a sweep longer than `bound_s` is overdue. Starts the thread."""
        self.sweeper = sweeper
        self.bound_s = bound_s
        self.metrics = metrics
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self.sweeps = 0
        self._thread = threading.Thread(target=self._run, name="recstream-sweep", daemon=True)
        self._thread.start()

    def hide(self, items: Iterable[str]) -> None:
        """Sweep these newly hidden items out of the stored lists, starting now."""
        with self._lock:
            self._pending.update(items)
            if self._pending:
                self._idle.clear()
        self._wake.set()

    def restore(self, item: str) -> None:
        """Forget a pending sweep of `item` (restored before its sweep began)."""
        with self._lock:
            self._pending.discard(item)

    def wait_idle(self, timeout_s: float) -> bool:
        """Whether every requested sweep finished within `timeout_s` (tests, the bench)."""
        return self._idle.wait(timeout_s)

    def _take(self) -> set[str]:
        with self._lock:
            taken, self._pending = self._pending, set()
            if not taken:
                self._idle.set()
            return taken

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            items = self._take()
            if items and not self._stop.is_set():
                self._sweep(items)
                self._wake.set()  # look again: more may have arrived meanwhile

    def _sweep(self, items: set[str]) -> None:
        """Sweep `items` until it succeeds or the worker stops (then they stay unswept)."""
        delay = _BACKOFF_START_S
        requested = time.monotonic()
        while not self._stop.is_set():
            try:
                stats = self.sweeper.sweep(items)
            except StreamError as exc:  # transient or not: the worker goes on, so do we
                log.warning("catalogue_sweep_failed", error=str(exc), retry_in_s=delay)
                self.metrics.retries.labels(stage="sweep").inc()
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, _BACKOFF_CAP_S)
                continue
            self._done(items, stats, time.monotonic() - requested)
            return

    def _done(self, items: set[str], stats: SweepStats, elapsed_s: float) -> None:
        self.sweeps += 1
        self.metrics.sweep_seconds.observe(stats.seconds)
        self.metrics.sweep_rewritten.inc(stats.rewritten)
        fields = {
            "items": len(items),
            "scanned": stats.scanned,
            "rewritten": stats.rewritten,
            "raced": stats.raced,
            "duration_ms": round(stats.seconds * 1000, 1),
        }
        if elapsed_s > self.bound_s:
            self.metrics.sweeps_overdue.inc()
            log.error("catalogue_sweep_overdue", bound_s=self.bound_s, **fields)
        else:
            log.info("catalogue_swept", **fields)

    def close(self) -> None:
        """Stop after the sweep under way (a stop cuts its retries short); close Redis."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self.sweeper.close()
