"""The dead-letter producer: rejected messages to the DLQ topic, with why and where from.

No single message may stop a partition. A reject is sent unchanged when the
DLQ takes it; one too large for it (librdkafka's `message.max.bytes`, or the
broker's limit) is sent as a bounded prefix with its original size. A
delivery that fails for a reason no retry can cure (the prefix refused too,
an invalid record) is handed back to the worker to record and skip. Any
other failure (broker down, timeouts) is queued again and raised as
transient, so the commit waits until the reject is in the DLQ.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from stream.batch import Rejected
from stream.errors import FatalError, TransientError
from stream.kafka_config import PRODUCER_DEFAULTS, KafkaConfig

PREFIX_BYTES = 64 * 1024  # what is kept of a value too large for the DLQ (the decoder's limit)
KEY_PREFIX_BYTES = 1024  # and of its key

_TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})
# The broker or client refuses this record itself: sending it again is refused again.
_INCURABLE = _TOO_LARGE | {
    KafkaError.INVALID_RECORD,
    KafkaError.INVALID_MSG,
    KafkaError.INVALID_MSG_SIZE,
}


@dataclass(frozen=True)
class Undeliverable:
    """A reject the DLQ refused for good: the worker records it and commits past it."""

    rejected: Rejected
    error: str  # librdkafka's name for the error, e.g. MSG_SIZE_TOO_LARGE
    detail: str


@dataclass
class DeadLetterReport:
    """What a successful `flush` settled besides plain deliveries."""

    truncated: list[Rejected] = field(default_factory=list)  # delivered as a bounded prefix
    undeliverable: list[Undeliverable] = field(default_factory=list)


@dataclass(frozen=True)
class _Letter:
    """One rejected message on its way to the DLQ, and whether its payload was cut short."""

    rejected: Rejected
    truncated: bool = False


def _headers(letter: _Letter) -> list[tuple[str, str | bytes | None]]:
    rejected = letter.rejected
    source = f"{rejected.topic}/{rejected.partition}/{rejected.offset}".encode()
    if not letter.truncated:
        return [("recstream.reason", rejected.reason.encode()), ("recstream.source", source)]
    return [
        ("recstream.reason", b"too_large"),
        ("recstream.original_size", str(len(rejected.value or b"")).encode()),
        ("recstream.source", source),
    ]


class DeadLetterProducer:
    """Sends rejected messages to the DLQ topic with the reason and source in headers."""

    def __init__(self, config: KafkaConfig, topic: str) -> None:
        """Create the producer."""
        self.topic = topic
        self._producer = Producer({**PRODUCER_DEFAULTS, **config})
        self._lock = threading.Lock()  # delivery callbacks append, `flush` takes
        self._failed: list[tuple[_Letter, KafkaError]] = []
        self._report = DeadLetterReport()

    def send(self, rejected: Rejected) -> None:
        """Queue one rejected message (asynchronous; `flush` makes it durable)."""
        self._produce(_Letter(rejected))

    def _produce(self, letter: _Letter) -> None:
        rejected = letter.rejected
        value, key = rejected.value, rejected.key
        if letter.truncated:
            value = value[:PREFIX_BYTES] if value is not None else None
            key = key[:KEY_PREFIX_BYTES] if key is not None else None
        while True:
            try:
                self._producer.produce(
                    self.topic,
                    value=value,
                    key=key,
                    headers=_headers(letter),
                    on_delivery=functools.partial(self._delivered, letter),
                )
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.1)
            except KafkaException as exc:  # refused before queueing, e.g. over message.max.bytes
                error: KafkaError = exc.args[0]
                if not self._settle(letter, error):
                    with self._lock:
                        self._failed.append((letter, error))  # re-sent by the next `flush`
                break
            else:
                break
        self._producer.poll(0)

    def _delivered(self, letter: _Letter, error: KafkaError | None, _message: Message) -> None:
        with self._lock:
            if error is not None:
                self._failed.append((letter, error))
            elif letter.truncated:
                self._report.truncated.append(letter.rejected)

    def _settle(self, letter: _Letter, error: KafkaError) -> bool:
        """Deal with a refusal no retry cures (True), or leave it to be re-sent (False)."""
        code = error.code()
        if code in _TOO_LARGE and not letter.truncated:
            self._produce(_Letter(letter.rejected, truncated=True))
            return True
        if code in _INCURABLE:
            with self._lock:
                self._report.undeliverable.append(
                    Undeliverable(letter.rejected, error.name(), error.str())
                )
            return True
        if error.fatal():
            raise FatalError(f"dead-letter producer: {error.str()}")
        return False

    def flush(self, timeout_s: float) -> DeadLetterReport:
        """Wait for every queued message; raise `TransientError` if any is not delivered yet.

        A message whose delivery failed for a passing reason is queued again
        before raising, so the caller's retry (and the commit after it) waits
        for it: such a reject is never committed past without reaching the
        DLQ. The report (prefixes sent, rejects refused for good) covers every
        `send` since the last successful flush.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = self._producer.flush(max(0.0, deadline - time.monotonic()))
            with self._lock:
                failed, self._failed = self._failed, []
            curable = [
                (letter, error) for letter, error in failed if not self._settle(letter, error)
            ]
            # A prefix queued in place of a refused whole: wait for it too, within the time.
            if curable or remaining or not failed or time.monotonic() >= deadline:
                break
        for letter, _ in curable:
            self._produce(letter)
        # a prefix queued just as the time ran out is not delivered yet either
        remaining = max(remaining, len(self._producer))
        if remaining or curable:
            reasons = sorted({error.str() for _, error in curable})[:3]
            raise TransientError(
                f"dead-letter produce incomplete: {remaining} queued, "
                f"{len(curable)} re-sent after {reasons}"
            )
        with self._lock:
            report, self._report = self._report, DeadLetterReport()
        return report

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush what is left for up to `timeout_s`, then drop the rest and stop the client.

        Without this the client lives on and keeps dialling the broker: queued
        letters hold their delivery callbacks (and so this object) inside
        librdkafka, where no garbage collector sees them. Dropping is safe: a
        letter not delivered was never flushed, so no offset past it was committed.
        """
        self._producer.flush(timeout_s)
        self._producer.purge()
        self._producer.flush(0)  # serves the purged letters' callbacks, releasing them
        close = getattr(self._producer, "close", None)  # only newer confluent-kafka has it
        if close is not None:
            close()


__all__ = ["PREFIX_BYTES", "DeadLetterProducer", "DeadLetterReport", "Undeliverable"]
