"""The Redis write of one batch on a thread of its own, so the loop learns the next meanwhile."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from stream.batch import DecodedBatch
from stream.redis_sink import RedisSink
from worker.engine.results import Learned
from worker.loop.retry import Retry
from worker.observability.stages import StageTimer


@dataclass(frozen=True)
class Published:
    """A batch's lists as Redis acknowledged them."""

    acked_at: float  # wall clock, for click→Redis latency
    seconds: float  # the write, retries included


class Publisher:
    """Writes batches' lists in order, one at a time, off the loop's thread.

    The caller keeps at most one write in flight and waits for it before the
    next, and before committing the offsets it covers: so lists reach Redis in
    batch order, and no offset is committed ahead of its lists.
    """

    def __init__(self, retry: Retry) -> None:
        """One thread, created on the first write."""
        self._retry = retry
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recstream-publish")

    def submit(
        self, sink: RedisSink, payloads: Sequence[tuple[str, bytes]], cold_start: bytes | None
    ) -> Future[Published]:
        """Start writing; the future holds the acknowledgement or the error that ended the write."""
        return self._thread.submit(self._publish, sink, payloads, cold_start)

    def _publish(
        self, sink: RedisSink, payloads: Sequence[tuple[str, bytes]], cold_start: bytes | None
    ) -> Published:
        start = time.perf_counter()
        self._retry("publish", lambda: sink.publish(payloads, cold_start))
        return Published(time.time(), time.perf_counter() - start)

    def close(self) -> None:
        """Let a write under way end (a stop cuts its retries short), then stop the thread."""
        self._thread.shutdown(wait=True)


@dataclass
class InFlight:
    """A batch learned and ranked whose lists are being written: committed once acknowledged."""

    batch: DecodedBatch
    learned: Learned | None
    users: int
    index_version: int
    timer: StageTimer
    started: float  # perf_counter at its poll
    published: Future[Published]
