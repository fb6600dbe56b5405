"""Kafka client settings: the config type and the defaults every consumer and producer starts from.

Kept apart from the clients so that the DLQ, the control reader and the sync
topics build their clients on the same defaults without loading the source.
"""

from __future__ import annotations

from collections.abc import Mapping

# librdkafka properties, plus confluent-kafka's own `logger` (a `logging.Logger`) where given
KafkaConfig = Mapping[str, object]

CONSUMER_DEFAULTS: dict[str, str | int | bool] = {
    "enable.auto.commit": False,  # offsets move only after Redis acknowledged the lists
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "session.timeout.ms": 10_000,
    "fetch.wait.max.ms": 10,
    "log.connection.close": False,
    # A subscribed topic that does not exist yet is consumed within seconds of its creation:
    # librdkafka notices it at the next metadata refresh, by default every 5 minutes.
    "topic.metadata.refresh.interval.ms": 5_000,
}
PRODUCER_DEFAULTS: dict[str, str | int | bool] = {
    "linger.ms": 5,
    "acks": "all",
    "enable.idempotence": True,
    "log.connection.close": False,
}

__all__ = ["CONSUMER_DEFAULTS", "PRODUCER_DEFAULTS", "KafkaConfig"]
