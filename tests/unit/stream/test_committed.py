"""Reading committed offsets while partitions are assigned: a slow broker is asked again."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from stream.committed import committed_offsets
from stream.errors import TransientError


class _Consumer:
    """Fails `failures` reads with `code`, then answers offset 7 for every partition."""

    def __init__(self, failures: int, code: int = KafkaError._TIMED_OUT) -> None:
        self.failures, self.code, self.calls = failures, code, 0

    def committed(self, parts: list[TopicPartition], timeout: float) -> list[TopicPartition]:  # noqa: ARG002
        self.calls += 1
        if self.calls <= self.failures:
            raise KafkaException(KafkaError(self.code))
        return [TopicPartition(p.topic, p.partition, 7) for p in parts]


def _read(consumer: Any, attempts: int = 3) -> dict[tuple[str, int], int]:
    return committed_offsets(consumer, [("t", 0), ("t", 1)], 0.01, attempts)


def test_a_timed_out_read_is_asked_again() -> None:
    """Two time-outs, then an answer: the offsets, after three reads."""
    consumer = _Consumer(failures=2)
    assert _read(consumer) == {("t", 0): 7, ("t", 1): 7}
    assert consumer.calls == 3


def test_time_outs_past_the_attempts_fail_as_transient() -> None:
    """Every read times out: the last one is raised (transient), none more is made."""
    consumer = _Consumer(failures=5)
    with pytest.raises(TransientError, match="read committed offsets"):
        _read(consumer)
    assert consumer.calls == 3


def test_another_error_is_raised_at_once() -> None:
    """An error that is not a time-out is not retried."""
    consumer = _Consumer(failures=1, code=KafkaError.UNKNOWN_MEMBER_ID)
    with pytest.raises(TransientError):
        _read(consumer)
    assert consumer.calls == 1
