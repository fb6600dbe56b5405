"""Records above the consumer's receive limit: dead-lettered where they are, then read past.

Such a record stalls its partition for ever (librdkafka refuses the whole
response and fetches it again). It is found only after a refusal
(`stream.oversize`); the loop finishes its write in flight, sends each one's
metadata to the DLQ, reads past it here and commits past it.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from stream.dead_letters import DeadLetterProducer
from stream.kafka import KafkaSource
from stream.oversize import REASON, Unfetchable, dead_letter
from worker.observability.metrics import WorkerMetrics

log = structlog.get_logger("recstream.worker")


def dead_letter_all(
    found: Sequence[Unfetchable], dead_letters: DeadLetterProducer, metrics: WorkerMetrics
) -> None:
    """Send each record's metadata to the DLQ (the caller flushes), counted by reason."""
    for record in found:
        dead_letters.send(dead_letter(record))
        metrics.dead_lettered.labels(reason=REASON).inc()


def read_past(found: Sequence[Unfetchable], source: KafkaSource) -> dict[tuple[str, int], int]:
    """Move each record's partition past it, logged; the offsets to commit."""
    for record in found:
        source.skip(record.topic, record.partition, record.offset + 1)
        log.error(
            "record_unfetchable_skipped",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            response_bytes=record.size,
            receive_message_max_bytes=record.limit,
            variable="RECSTREAM_KAFKA_RECEIVE_MESSAGE_MAX_BYTES",
        )
    return {(r.topic, r.partition): r.offset + 1 for r in found}
