"""What the broker says of a consumer group and a topic: members and partitions (for warnings).

Read with an admin client of its own, never from the consumer's callbacks'
state: a member knows only its own assignment, the coordinator knows the group.
"""

from __future__ import annotations

from typing import Any, cast

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from stream.kafka_config import KafkaConfig


class GroupView:
    """Members of a group and partitions of a topic, each asked when wanted; None if unknown."""

    def __init__(self, config: KafkaConfig, timeout_s: float = 5.0) -> None:
        """An admin client on `config` (client settings: no consumer or group properties)."""
        self._admin = AdminClient(cast("dict[str, Any]", dict(config)))
        self.timeout_s = timeout_s

    def members(self, group: str) -> int | None:
        """How many members the coordinator lists in `group` now."""
        try:
            future = self._admin.describe_consumer_groups([group], request_timeout=self.timeout_s)
            described = future[group].result(timeout=self.timeout_s)
        except (KafkaException, TimeoutError, OSError):
            return None
        finally:
            self._admin.poll(0)  # serve its log lines
        return len(described.members)

    def partitions(self, topic: str) -> int | None:
        """How many partitions `topic` has."""
        try:
            meta = self._admin.list_topics(topic, timeout=self.timeout_s)
        except KafkaException:
            return None
        found = meta.topics.get(topic)
        if found is None or found.error is not None:
            return None
        return len(found.partitions)


__all__ = ["GroupView"]
