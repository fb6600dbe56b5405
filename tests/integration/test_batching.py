"""Latency-first batching on real servers: an idle loop does not wait, a backlog fills batches."""

from __future__ import annotations

import threading
import time
from typing import Any

import msgpack
import pytest
from fault_helpers import click_messages, click_stream, wait_until

from worker.app import build_worker

_BATCH_MS = 3000  # long, so that waiting it out would be plain to see


def _click(user: str, item: str) -> tuple[bytes, bytes]:
    return user.encode(), msgpack.packb({"user": user, "item": item, "ts": time.time()})


def test_an_idle_loop_publishes_a_lone_click_well_within_the_batch_time(
    make_settings: Any, names: Any, produce: Any, redis_client: Any
) -> None:
    """A click arriving while the loop waits for input is listed long before BATCH_MS is up."""
    worker = build_worker(make_settings(batch_ms=_BATCH_MS))
    loop = threading.Thread(target=worker.run, kwargs={"handle_signals": False}, daemon=True)
    loop.start()
    try:
        produce(names.topic, [_click("warm", "i0")])  # the first batch warms the model
        assert wait_until(lambda: worker.totals.messages >= 1, 60, every_s=0.01)
        time.sleep(0.5)  # the loop is idle again, waiting in a poll
        start = time.monotonic()
        produce(names.topic, [_click("lone", "i1")])
        assert wait_until(
            lambda: redis_client.exists(f"{names.prefix}lone"), 10 * _BATCH_MS / 1000, 0.005
        )
        elapsed_ms = (time.monotonic() - start) * 1000
    finally:
        worker.request_stop()
        loop.join(30)
    # Far under BATCH_MS: the wait ends at the first message, not at the batch time.
    assert elapsed_ms < _BATCH_MS / 3, elapsed_ms
    assert worker.totals.messages == 2


@pytest.mark.parametrize(("overlap", "batch_max"), [(False, 200), (True, 200), (False, 800)])
def test_a_backlog_still_forms_full_batches(
    make_settings: Any, names: Any, produce: Any, overlap: bool, batch_max: int
) -> None:
    """A fetched backlog is taken in full batches: batch_size at a time, or growing to batch_max.

    With room to grow, each full poll doubles the next (200, then 400 asked for, 300 left).
    """
    batch_size, total = 200, 500
    settings = make_settings(batch_size=batch_size, batch_max=batch_max, batch_ms=_BATCH_MS)
    worker = build_worker(settings)
    worker.overlap = overlap
    try:
        assert worker.run_until(lambda w: bool(w.source.assigned), timeout_s=60)
        produce(names.topic, click_messages(click_stream(0, total)), partition=0)
        time.sleep(2.0)  # the consumer fetches the backlog in the background meanwhile
        sizes = []
        deadline = time.monotonic() + 60
        while sum(sizes) < total and time.monotonic() < deadline:
            report = worker.step()
            if report is not None:
                sizes.append(report.messages)
    finally:
        worker.close()
    if batch_max == batch_size:
        assert sizes == [batch_size, batch_size, total - 2 * batch_size]
    else:
        assert sizes == [batch_size, total - batch_size]


def test_partitions_revoked_with_a_write_in_flight_commit_it_first(
    make_settings: Any, names: Any, produce: Any, committed: Any
) -> None:
    """The batch whose lists are being written is committed before its partitions go."""
    worker = build_worker(make_settings(batch_ms=_BATCH_MS))
    worker.overlap = True  # a write stays in flight across steps
    sent = produce(names.topic, click_messages(click_stream(0, 50)), partition=0)
    try:
        deadline = time.monotonic() + 60
        while worker._in_flight is None and time.monotonic() < deadline:
            worker.step()
        assert worker.totals.messages == 0  # polled, learned, its write not yet finished
        worker.source.close()  # leaving the group revokes every partition
        assert worker.totals.messages == 50
    finally:
        worker.close()
    assert committed(names.group, names.topic) == {0: sent.ends[0], 1: 0, 2: 0}
