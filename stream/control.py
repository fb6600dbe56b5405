"""The catalogue control topic: `{"op": "remove"|"restore"|"ban", "item": ...}` messages.

Every worker reads every control message (the topic is read by assignment, not by a
consumer group, so no worker misses a removal its peers were handed). Bad messages are
`Rejected` like bad clicks and go to the same dead-letter topic. Offsets are not
committed to Kafka: the worker keeps them in its checkpoint beside the catalogue they
produced, and starts from the beginning of the topic without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from stream.batch import Rejected
from stream.errors import BadEvent, FatalError, TransientError
from stream.events import _frame, _ident
from stream.kafka_config import CONSUMER_DEFAULTS, KafkaConfig

OPS = ("remove", "restore", "ban")
_MAX_PER_POLL = 1_000


@dataclass(frozen=True, slots=True)
class ControlOp:
    """One valid control message: what to do to which item id."""

    op: str
    item: str


def decode_control(value: bytes | None) -> ControlOp:
    """Decode and validate one control message, or raise `BadEvent` with a reason.

    >>> decode_control(b'{"op": "remove", "item": 42}')
    ControlOp(op='remove', item='42')
    """
    message = _frame(value or b"")
    if not isinstance(message, dict):
        raise BadEvent("not_a_map")
    if "op" not in message:
        raise BadEvent("missing_field:op")
    op = message["op"]
    if not isinstance(op, str):
        raise BadEvent("bad_type:op")
    if op not in OPS:
        raise BadEvent("bad_value:op")
    return ControlOp(op, _ident(message, "item"))


@dataclass
class ControlPolled:
    """What one poll of the control topic gave: valid operations and rejects, in order."""

    ops: list[ControlOp] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


class ControlSource:
    """Reads every partition of the control topic without joining a group; never blocks."""

    def __init__(
        self,
        config: KafkaConfig,
        topic: str,
        start_offsets: Mapping[int, int] | None = None,
    ) -> None:
        """Assign all of `topic`'s partitions, at `start_offsets` (partition: next offset).

        Partitions without a start offset are read from the beginning.
        """
        self.topic = topic
        settings = {
            **CONSUMER_DEFAULTS,
            **config,
            # A group id librdkafka wants for its offset API; nothing is committed under it.
            "group.id": f"{config.get('group.id', 'recstream')}.control",
        }
        try:
            self._consumer = Consumer(settings)
            meta = self._consumer.list_topics(topic, timeout=10)
        except KafkaException as exc:
            raise FatalError(f"kafka control topic {topic}: {exc}") from exc
        described = meta.topics.get(topic)
        if described is None or described.error is not None:
            error = described.error if described is not None else "missing"
            raise FatalError(f"kafka control topic {topic}: {error}")
        starts = dict(start_offsets or {})
        self.next_offsets: dict[int, int] = {}
        parts = []
        for partition in sorted(described.partitions):
            start = starts.get(partition, OFFSET_BEGINNING)
            parts.append(TopicPartition(topic, partition, start))
            if start >= 0:
                self.next_offsets[partition] = start
        self._consumer.assign(parts)

    def poll(self) -> ControlPolled:
        """Whatever control messages have arrived, without waiting for more."""
        polled = ControlPolled()
        try:
            messages = self._consumer.consume(num_messages=_MAX_PER_POLL, timeout=0)
        except KafkaException as exc:
            raise TransientError(f"kafka consume control: {exc}") from exc
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001  (librdkafka's name)
                    continue
                if error.fatal():
                    raise FatalError(f"kafka consume control: {error.str()}")
                continue  # a transient client error: librdkafka retries it
            partition, offset = message.partition() or 0, message.offset() or 0
            self.next_offsets[partition] = offset + 1
            value = message.value()
            try:
                polled.ops.append(decode_control(value))
            except BadEvent as exc:
                polled.rejected.append(
                    Rejected(value, message.key(), self.topic, partition, offset, str(exc))
                )
        return polled

    def close(self) -> None:
        """Leave without committing (offsets live in the checkpoint)."""
        self._consumer.close()
