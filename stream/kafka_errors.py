"""librdkafka errors as the kinds the worker acts on: fatal or transient (`stream.errors`).

One mapping for every Kafka client in `stream/`, so that a client's error is
judged the same way whichever call met it.
"""

from __future__ import annotations

from typing import NoReturn

from confluent_kafka import KafkaError

from stream.errors import FatalError, TransientError

# This member's generation is gone (evicted, or mid-rebalance): a commit cannot succeed.
GENERATION_LOST = frozenset(
    {
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError._ASSIGNMENT_LOST,  # noqa: SLF001  (librdkafka's names)
        KafkaError._STATE,  # noqa: SLF001
    }
)
TIMED_OUT = KafkaError._TIMED_OUT  # noqa: SLF001  (librdkafka's local time-out code)
PARTITION_EOF = KafkaError._PARTITION_EOF  # noqa: SLF001


def raise_for(error: KafkaError, action: str) -> NoReturn:
    """Raise `error` as `FatalError` when librdkafka says it is fatal, else `TransientError`."""
    if error.fatal():
        raise FatalError(f"kafka {action}: {error.str()}")
    raise TransientError(f"kafka {action}: {error.str()}")


__all__ = ["GENERATION_LOST", "PARTITION_EOF", "TIMED_OUT", "raise_for"]
