"""The dead-letter producer never lets a reject be dropped silently."""

from __future__ import annotations

import pytest

from stream import DeadLetterProducer, Rejected, TransientError
from worker.embedded import free_port


def test_failed_delivery_is_requeued_not_dropped() -> None:
    """A delivery that times out raises TransientError and the message is queued again."""
    dlq = DeadLetterProducer(
        {"bootstrap.servers": f"127.0.0.1:{free_port()}", "message.timeout.ms": 300},
        "clicks.dlq",
    )
    dlq.send(Rejected(b"\xff", b"k", "clicks", 0, 7, "invalid_msgpack"))
    with pytest.raises(TransientError, match="re-sent"):
        dlq.flush(5.0)
    assert len(dlq._producer) == 1  # queued again, waiting for the broker
    with pytest.raises(TransientError):
        dlq.flush(0.1)
    dlq.close(0.1)
