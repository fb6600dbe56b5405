"""Latency-first batching on real servers: an idle loop does not wait, a backlog fills batches."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
import torch
from fault_helpers import click_messages, click_stream, wait_until

from stream.kafka import Polled
from worker.app import build_worker
from worker.engine.threads import SMALL_BATCH_EVENTS
from worker.loop.batch_loop import Worker
from worker.loop.thread_tuner import size_class

_BATCH_MS = 3000  # long, so that waiting it out would be plain to see
# Longer still where a poll must return before it: that poll begins before the click is
# produced (a new producer's connect and flush), which a busy machine can slow to seconds.
_IDLE_BATCH_MS = 10_000


def _click(user: str, item: str) -> tuple[bytes, bytes]:
    return user.encode(), msgpack.packb({"user": user, "item": item, "ts": time.time()})


@dataclass
class _Poll:
    """One call of the worker's `source.poll`: what it was asked and what it gave."""

    timeout_s: float
    messages: int
    took_s: float


class _PollRecorder:
    """Wraps a worker's `source.poll`: records each call and says when one starts to wait.

    The test then knows the loop is idle (blocked in a poll that may wait the
    batch time) from the loop itself, not from a sleep that hopes so.
    """

    def __init__(self, worker: Worker) -> None:
        self.calls: list[_Poll] = []
        self.waiting = threading.Event()
        self._poll = worker.source.poll
        worker.source.poll = self  # type: ignore[method-assign]

    def __call__(self, max_messages: int, timeout_s: float) -> Polled:
        if timeout_s > 0:
            self.waiting.set()
        start = time.monotonic()
        polled = self._poll(max_messages, timeout_s)
        self.calls.append(_Poll(timeout_s, len(polled.messages), time.monotonic() - start))
        return polled


def test_an_idle_loop_publishes_a_lone_click_without_waiting_out_the_batch_time(
    make_settings: Any, names: Any, produce: Any, redis_client: Any
) -> None:
    """A click arriving while the loop waits for input ends that wait: its poll returns it.

    Judged by the poll itself: the one that was waiting when the click was sent
    returned it, before its BATCH_MS were up (a poll that waits them out returns
    nothing at BATCH_MS). No wall-clock target: that is `make bench`'s.
    """
    worker = build_worker(make_settings(batch_ms=_IDLE_BATCH_MS))
    polls = _PollRecorder(worker)
    loop = threading.Thread(target=worker.run, kwargs={"handle_signals": False}, daemon=True)
    loop.start()
    try:
        produce(names.topic, [_click("warm", "i0")])  # the first batch warms the model
        assert wait_until(lambda: worker.totals.messages >= 1, 60, every_s=0.01)
        polls.waiting.clear()
        assert polls.waiting.wait(60)  # the loop is idle again, blocked in a waiting poll
        waiting_since = len(polls.calls)  # the call now waiting is the next one recorded
        produce(names.topic, [_click("lone", "i1")])
        assert wait_until(lambda: redis_client.exists(f"{names.prefix}lone"), 60, 0.005)
    finally:
        worker.request_stop()
        loop.join(30)
    assert worker.totals.messages == 2
    calls = polls.calls[waiting_since:]
    # Every waiting poll before the click's returned empty after its full wait (no message
    # was there); the one that got the click returned at once with it.
    got = next(call for call in calls if call.messages)
    assert got.messages == 1
    assert got.timeout_s == _IDLE_BATCH_MS / 1000
    assert got.took_s < _IDLE_BATCH_MS / 1000, got


@pytest.mark.parametrize(("overlap", "batch_max"), [(False, 200), (True, 200), (False, 800)])
def test_a_backlog_still_forms_full_batches(
    make_settings: Any, names: Any, produce: Any, overlap: bool, batch_max: int
) -> None:
    """A fetched backlog is taken in full batches: batch_size at a time, or growing to batch_max.

    With room to grow, each full poll doubles the next (200, then 400 asked for). The
    steps start once the consumer holds the whole backlog: its cached high watermark
    (what the last fetch response said) covers a marker sent after it, and fetch
    responses are handled in order, so the backlog's records were queued before the
    marker's watermark was seen.
    """
    batch_size, total = 200, 500
    settings = make_settings(batch_size=batch_size, batch_max=batch_max, batch_ms=_BATCH_MS)
    worker = build_worker(settings)
    worker.overlap = overlap
    at_start = {(names.topic, 0): 0}  # the lag from offset 0 is partition 0's high watermark
    try:
        assert worker.run_until(lambda w: bool(w.source.assigned), timeout_s=60)
        produce(names.topic, click_messages(click_stream(0, total)), partition=0)
        assert wait_until(lambda: worker.source.lag(at_start) >= total, 60, every_s=0.01)
        produce(names.topic, click_messages(click_stream(total, 1)), partition=0)
        assert wait_until(lambda: worker.source.lag(at_start) >= total + 1, 60, every_s=0.01)
        sizes = []
        deadline = time.monotonic() + 60
        while sum(sizes) < total + 1 and time.monotonic() < deadline:
            report = worker.step()
            if report is not None:
                sizes.append(report.messages)
    finally:
        worker.close()
    # The marker rides in the last batch, or alone after it if its records were still
    # being queued when the last batch was taken.
    if batch_max == batch_size:
        assert sizes[:2] == [batch_size, batch_size], sizes
        assert sizes[2:] in ([total - 2 * batch_size + 1], [total - 2 * batch_size, 1]), sizes
    else:
        assert sizes[:1] == [batch_size], sizes
        assert sizes[1:] in ([total - batch_size + 1], [total - batch_size, 1]), sizes


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


def test_a_small_batch_is_learned_on_one_thread_a_large_one_on_all(
    make_settings: Any, names: Any, produce: Any
) -> None:
    """Untuned, torch's threads follow the batch: one below SMALL_BATCH_EVENTS, then restored."""
    settings = make_settings(
        batch_size=1024, batch_ms=_BATCH_MS, torch_threads=2, torch_threads_tuned=False
    )
    worker = build_worker(settings)
    configured = torch.get_num_threads()
    seen = _threads_in_learn(
        worker, produce, names.topic, [SMALL_BATCH_EVENTS // 4, 2 * SMALL_BATCH_EVENTS]
    )
    assert configured == 2
    assert seen
    for events, threads in seen:
        assert threads == (1 if events < SMALL_BATCH_EVENTS else configured), seen
    assert any(events >= SMALL_BATCH_EVENTS for events, _ in seen), seen  # both kinds ran
    assert any(events < SMALL_BATCH_EVENTS for events, _ in seen), seen
    assert torch.get_num_threads() == configured


def test_tuned_large_batches_try_all_threads_then_one(
    make_settings: Any, names: Any, produce: Any
) -> None:
    """Tuned (the default), a large batch's class first runs twice on all threads, then on one."""
    settings = make_settings(batch_size=1024, batch_ms=_BATCH_MS, torch_threads=2)
    worker = build_worker(settings)
    seen = _threads_in_learn(worker, produce, names.topic, [2 * SMALL_BATCH_EVENTS] * 4)
    tuner = worker._tuner
    assert tuner is not None
    by_class: dict[int, list[int]] = {}
    for events, threads in seen:
        if events >= SMALL_BATCH_EVENTS:
            by_class.setdefault(size_class(events), []).append(threads)
    assert by_class, seen
    for size, counts in by_class.items():
        assert counts[:4] == [2, 2, 1, 1][: len(counts)], seen  # each first batch uncounted
        assert set(tuner.cost[size]) == {n for n in (1, 2) if counts.count(n) >= 2}, tuner.cost
    assert torch.get_num_threads() == 2


def _threads_in_learn(
    worker: Worker, produce: Any, topic: str, sizes: list[int]
) -> list[tuple[int, int]]:
    """Produce batches of `sizes` clicks one after another; each learn's (events, threads)."""
    seen: list[tuple[int, int]] = []
    learn = worker.engine.learn

    def spy(users: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((len(users), torch.get_num_threads()))
        return learn(users, *args, **kwargs)

    worker.engine.learn = spy  # type: ignore[method-assign]
    try:
        assert worker.run_until(lambda w: bool(w.source.assigned), timeout_s=60)
        done = 0
        for count in sizes:
            produce(topic, click_messages(click_stream(done, count)), partition=0)
            done += count
            assert worker.run_until(lambda w, done=done: w.totals.messages >= done, 60)
    finally:
        worker.close()
    return seen
