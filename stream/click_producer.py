"""The plain click producer for replay, the demo and the benchmarks: key = user id, value = event.

The worker never produces clicks; its own producers (DLQ, sync topics) live
beside what they send.
"""

from __future__ import annotations

from confluent_kafka import Producer

from stream.kafka_config import PRODUCER_DEFAULTS, KafkaConfig


class ClickProducer:
    """Plain producer for replay and the demo: key = user id, value = encoded event."""

    def __init__(self, config: KafkaConfig, topic: str) -> None:
        """Create the producer."""
        self.topic = topic
        self._producer = Producer({**PRODUCER_DEFAULTS, **config})

    def connect(self, timeout_s: float = 10.0) -> None:
        """Reach the broker and learn the topic's partition leaders before the first send.

        Otherwise the first second of a paced stream waits in the local queue while
        the client starts (about 1 s against Tansu) and arrives as one late burst.
        """
        self._producer.list_topics(self.topic, timeout=timeout_s)

    def send(self, key: bytes | None, value: bytes) -> None:
        """Queue one message, waiting on a full local queue rather than dropping it."""
        while True:
            try:
                self._producer.produce(self.topic, value=value, key=key)
            except BufferError:
                self._producer.poll(0.05)
            else:
                return

    def poll(self) -> None:
        """Serve delivery callbacks."""
        self._producer.poll(0)

    def flush(self, timeout_s: float = 60.0) -> int:
        """Wait for delivery; returns how many messages are still queued."""
        remaining: int = self._producer.flush(timeout_s)
        return remaining


__all__ = ["ClickProducer"]
