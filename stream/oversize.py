"""Records too large for the consumer to fetch: found, so that the worker can skip them.

librdkafka refuses a fetch response larger than `receive.message.max.bytes`
whole ("Invalid response size N (0..M)"), drops the connection and fetches
the same offsets again, for ever: every partition in that response stalls, and
the application sees no message, only the client's error callback. A broker
bounds a response by `fetch.max.bytes`, except that the first record batch of
a partition is always returned whole (KIP-74), so a record (or batch) above
the consumer's limit stalls its partition and those fetched beside it.

What is here: a watch on the error callback that notices such a refusal, and
a probe that fetches each lagging partition alone from its next offset with
the same limit; a partition whose lone fetch is refused holds, at that offset,
what cannot be fetched. The worker decides what to do (dead-letter its
metadata, seek past it).

Tansu 0.6 bounds no fetch response (it returns everything from the offset), so
there a backlog larger than the limit looks the same; at librdkafka's default
limit (100 MB) that takes a very large backlog.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from stream.batch import Rejected

_REFUSED = re.compile(r"Invalid response size (\d+) \(0\.\.(\d+)\)")
# A probe waits this long for its lone fetch: the refusal comes at the first response.
PROBE_S = 5.0


@dataclass(frozen=True)
class Unfetchable:
    """A record the consumer cannot fetch: where it is and the response it came in."""

    topic: str
    partition: int
    offset: int
    size: int  # bytes of the refused response: the record's batch (and what followed it)
    limit: int  # the consumer's receive.message.max.bytes


class ResponseWatch:
    """An `error_cb`: notes refused responses and keeps every error's text for the caller."""

    def __init__(self) -> None:
        """Nothing seen yet."""
        self._lock = threading.Lock()
        self._refused: tuple[int, int] | None = None
        self._errors: list[str] = []

    def __call__(self, error: KafkaError) -> None:
        """Called by librdkafka (from the client's poll) with each client-level error."""
        text = error.str()
        match = _REFUSED.search(text)
        with self._lock:
            if match:
                self._refused = (int(match[1]), int(match[2]))
            if len(self._errors) < 100:  # noqa: PLR2004  (bounded between two polls)
                self._errors.append(text)

    def take_refused(self) -> tuple[int, int] | None:
        """(response size, limit) of the last refusal since the last call, if any."""
        with self._lock:
            refused, self._refused = self._refused, None
        return refused

    def take_errors(self) -> list[str]:
        """Every error's text since the last call."""
        with self._lock:
            errors, self._errors = self._errors, []
        return errors


REASON = "too_large_to_fetch"


def dead_letter(record: Unfetchable) -> Rejected:
    """What goes to the DLQ for a record that cannot be fetched: its metadata, as JSON."""
    value = json.dumps(
        {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "size": record.size,
            "limit": record.limit,
        }
    ).encode()
    return Rejected(value, None, record.topic, record.partition, record.offset, REASON)


def probe(
    config: Mapping[str, object], starts: Mapping[tuple[str, int], int], timeout_s: float = PROBE_S
) -> list[Unfetchable]:
    """Fetch each partition alone from its start with `config`'s limit; the refused ones.

    A consumer of its own (no group, nothing committed), one partition at a
    time: a partition whose fetch returns a record or its end is fine.
    """
    watch = ResponseWatch()
    own = {
        k: v
        for k, v in config.items()
        if k not in ("group.id", "group.instance.id", "partition.assignment.strategy")
    }
    probe_config = {
        **own,
        "group.id": f"recstream-probe-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "error_cb": watch,
    }
    consumer = Consumer(cast("dict[str, Any]", probe_config))
    found: list[Unfetchable] = []
    try:
        for (topic, partition), offset in starts.items():
            consumer.assign([TopicPartition(topic, partition, offset)])
            refused = _refused(consumer, watch, timeout_s)
            consumer.unassign()
            if refused is not None:
                found.append(Unfetchable(topic, partition, offset, *refused))
    finally:
        consumer.close()
    return found


def _refused(consumer: Consumer, watch: ResponseWatch, timeout_s: float) -> tuple[int, int] | None:
    watch.take_refused()  # a refusal seen for the partition before: not this fetch's
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            messages = consumer.consume(1, 0.2)
        except KafkaException:
            messages = []
        refused = watch.take_refused()
        if refused is not None:
            return refused
        for message in messages:
            error = message.error()
            if error is None or error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                return None  # fetched: nothing too large here
    return None


__all__ = ["PROBE_S", "REASON", "ResponseWatch", "Unfetchable", "dead_letter", "probe"]
