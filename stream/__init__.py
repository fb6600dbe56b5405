"""The edges: the event contract and codec, the Kafka source and DLQ, the Redis sink."""

from stream.batch import DecodedBatch, Rejected, decode_messages
from stream.dead_letters import (
    PREFIX_BYTES,
    DeadLetterProducer,
    DeadLetterReport,
    Undeliverable,
)
from stream.errors import BadEvent, FatalError, StreamError, TransientError
from stream.events import (
    MAX_EVENT_BYTES,
    MAX_ID_BYTES,
    ClickEvent,
    EventLimits,
    decode_event,
    encode_event,
)
from stream.kafka import (
    ClickProducer,
    KafkaSource,
    Polled,
    ensure_topics,
    group_progress,
    wait_for_broker,
)
from stream.redis_sink import (
    Recommendation,
    RedisSink,
    decode_recommendation,
    encode_recommendation,
)

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_ID_BYTES",
    "PREFIX_BYTES",
    "BadEvent",
    "ClickEvent",
    "ClickProducer",
    "DeadLetterProducer",
    "DeadLetterReport",
    "DecodedBatch",
    "EventLimits",
    "FatalError",
    "KafkaSource",
    "Polled",
    "Recommendation",
    "RedisSink",
    "Rejected",
    "StreamError",
    "TransientError",
    "Undeliverable",
    "decode_event",
    "decode_messages",
    "decode_recommendation",
    "encode_event",
    "encode_recommendation",
    "ensure_topics",
    "group_progress",
    "wait_for_broker",
]
