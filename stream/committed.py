"""Committed offsets of a consumer group: read by the source while assigned, and for drain checks.

Both reads ask the group coordinator; a slow one is asked again rather than
failing the worker (`committed_offsets`), a drain check reads once.
"""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from stream.kafka_config import KafkaConfig
from stream.kafka_errors import TIMED_OUT, raise_for


def committed_offsets(
    consumer: Consumer, parts: list[tuple[str, int]], timeout_s: float, attempts: int
) -> dict[tuple[str, int], int]:
    """`consumer.committed` of `parts`, a timed-out read asked again up to `attempts` times."""
    for attempt in range(1, attempts + 1):
        try:
            found = consumer.committed([TopicPartition(t, p) for t, p in parts], timeout=timeout_s)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if attempt == attempts or error.fatal() or error.code() != TIMED_OUT:
                raise_for(error, "read committed offsets")
            continue
        return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}
    raise AssertionError("unreachable: the last attempt returns or raises")


def group_progress(
    config: KafkaConfig, group: str, topic: str, timeout_s: float = 10
) -> dict[int, tuple[int, int]]:
    """`{partition: (committed offset, end offset)}` of a group on a topic (lag, drain checks).

    The end offset is what the broker's ListOffsets answers; Tansu 0.6 can
    answer the base offset of the last record batch there, so drain checks
    against Tansu should sum committed offsets against messages sent.
    """
    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)
        parts = [TopicPartition(topic, p) for p in meta.topics[topic].partitions]
        committed = consumer.committed(parts, timeout=timeout_s)
        progress: dict[int, tuple[int, int]] = {}
        for tp in committed:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(topic, tp.partition), timeout=timeout_s
            )
            progress[tp.partition] = (max(tp.offset, 0), high)
    except KafkaException as exc:
        raise_for(exc.args[0], "read group progress")
    else:
        return progress
    finally:
        consumer.close()


__all__ = ["committed_offsets", "group_progress"]
