"""The dead-letter producer never lets a reject be dropped silently."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from stream.batch import Rejected
from stream.dead_letters import DeadLetterProducer, DeadLetterReport
from stream.errors import TransientError
from worker.testing.embedded import free_port


def test_failed_delivery_is_requeued_not_dropped() -> None:
    """A delivery that times out raises TransientError and the message is queued again."""
    dlq = DeadLetterProducer(
        {"bootstrap.servers": f"127.0.0.1:{free_port()}", "message.timeout.ms": 300},
        "clicks.dlq",
    )
    dlq.send(Rejected(b"\xff", b"k", "clicks", 0, 7, "invalid_msgpack"))
    with pytest.raises(TransientError, match="re-sent"):
        dlq.flush(5.0)
    # Queued again, waiting for the broker. The client's length also counts its pending
    # connection errors, so the letters are counted as a purge hands them back instead.
    dlq._producer.purge()
    dlq._producer.flush(0)
    assert [letter.rejected.offset for letter, _ in dlq._failed] == [7]
    with pytest.raises(TransientError):
        dlq.flush(0.1)
    dlq.close(0.1)


def _flushed(dlq: DeadLetterProducer, tries: int = 30) -> DeadLetterReport:
    """Flush as the loop does: again after each `TransientError` (a busy machine may need it)."""
    for _ in range(tries - 1):
        try:
            return dlq.flush(1.0)
        except TransientError:
            continue
    return dlq.flush(1.0)


def test_a_reject_refused_even_as_a_prefix_is_reported_and_not_retried() -> None:
    """A message the DLQ refuses whole and as a prefix comes back as undeliverable, not a retry."""
    dlq = DeadLetterProducer(
        {"bootstrap.servers": f"127.0.0.1:{free_port()}", "message.max.bytes": 10_000},
        "clicks.dlq",
    )
    dlq.send(Rejected(b"x" * 100_000, b"k", "clicks", 2, 9, "too_large"))
    report = _flushed(dlq)
    assert report.truncated == []
    [lost] = report.undeliverable
    assert (lost.rejected.partition, lost.rejected.offset, lost.error) == (
        2,
        9,
        "MSG_SIZE_TOO_LARGE",
    )
    # Nothing left queued to loop on. The client's length also counts its pending
    # connection errors (a busy machine may hold one), so count what a purge hands back.
    dlq._producer.purge()
    dlq._producer.flush(0)
    assert dlq._failed == []
    assert dlq.flush(0.1).undeliverable == []  # reported once
    dlq.close(0.1)


TASKS = Path("/proc/self/task")


def _native_threads() -> int:
    return len(list(TASKS.iterdir()))


@pytest.mark.skipif(not TASKS.is_dir(), reason="counts threads through /proc")
def test_close_stops_the_client_even_with_letters_queued() -> None:
    """After `close`, librdkafka's threads are gone: no client keeps dialling a dead broker."""
    before = _native_threads()
    dlq = DeadLetterProducer({"bootstrap.servers": f"127.0.0.1:{free_port()}"}, "clicks.dlq")
    dlq.send(Rejected(b"\xff", b"k", "clicks", 0, 7, "invalid_msgpack"))
    assert _native_threads() > before
    dlq.close(0.1)
    gc.collect()
    assert _native_threads() == before
