"""Kafka edges of scale-out: the state topic (per-partition user state) and the item feed.

Bytes in, bytes out; what the bytes mean is `worker.scaleout.codec`'s business.

- `SyncProducer` writes both topics; `flush` raises `TransientError` unless
  every record was acknowledged (a hand-over is complete only then).
- `PartitionReader` reads one partition of the state topic from its start to
  its end. The end is found by `enable.partition.eof` (from fetch responses),
  not ListOffsets: Tansu 0.6 answers ListOffsets with the base offset of the
  last record batch, which would cut off the last batch (and its marker).
- `FeedReader` follows the item feed (one partition) from its start.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from stream.errors import FatalError, TransientError
from stream.kafka_config import PRODUCER_DEFAULTS, KafkaConfig

_READER_DEFAULTS: dict[str, str | int | bool] = {
    "enable.auto.commit": False,
    "enable.partition.eof": True,
    "auto.offset.reset": "earliest",
    "fetch.wait.max.ms": 10,
    "log.connection.close": False,
    # state records can be large (a heavy user's history): fetch them whole
    "fetch.max.bytes": 64 << 20,
    "max.partition.fetch.bytes": 16 << 20,
}


def _reader(config: KafkaConfig) -> Consumer:
    try:
        # Assigned partitions only: the group id is never joined or committed to.
        return Consumer({**_READER_DEFAULTS, **config, "group.id": f"reader-{uuid.uuid4().hex}"})
    except KafkaException as exc:
        raise FatalError(f"kafka consumer config rejected: {exc}") from exc


class SyncProducer:
    """One idempotent producer for the state topic and the item feed."""

    def __init__(self, config: KafkaConfig) -> None:
        """Create the producer (large records allowed: a delta chunk is up to ~1 MB)."""
        self._failed: list[str] = []
        self._first: dict[tuple[str, int], int] = {}  # lowest offset acknowledged since `mark`
        self._last: dict[tuple[str, int], int] = {}  # highest offset ever acknowledged
        try:
            self._producer = Producer({**PRODUCER_DEFAULTS, "message.max.bytes": 4 << 20, **config})
        except KafkaException as exc:
            raise FatalError(f"kafka producer config rejected: {exc}") from exc

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failed.append(error.str())
            return
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is not None and partition is not None and offset is not None and offset >= 0:
            where = (topic, partition)
            self._first[where] = min(offset, self._first.get(where, offset))
            self._last[where] = max(offset, self._last.get(where, offset))

    def mark(self) -> None:
        """Forget the offsets acknowledged so far (`first_since_mark` counts from here)."""
        self.flush()
        self._first = {}

    def last_delivered(self, topic: str, partition: int) -> int | None:
        """The highest offset this producer's records were acknowledged at (flush first)."""
        return self._last.get((topic, partition))

    def first_since_mark(self, topic: str, partition: int) -> int | None:
        """The lowest offset acknowledged on `topic`/`partition` since `mark` (flush first)."""
        return self._first.get((topic, partition))

    def send(
        self, topic: str, key: bytes, value: bytes | None, partition: int | None = None
    ) -> None:
        """Queue one record (a None value: a tombstone), waiting on a full local queue."""
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    partition=-1 if partition is None else partition,  # -1: the partitioner's
                    on_delivery=self._delivered,
                )
            except BufferError:
                self._producer.poll(0.05)
            else:
                self._producer.poll(0)
                return

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every queued record is acknowledged; `TransientError` if one was not."""
        remaining = self._producer.flush(timeout_s)
        failed, self._failed = self._failed, []
        if remaining or failed:
            raise TransientError(
                f"kafka sync produce: {remaining} unacknowledged, {len(failed)} failed "
                f"({failed[0] if failed else 'timeout'})"
            )

    def close(self) -> None:
        """Deliver what is queued (best effort)."""
        self._producer.flush(10.0)


class PartitionReader:
    """Reads a whole partition of a topic, start to end, as (key, value) records."""

    def __init__(self, config: KafkaConfig) -> None:
        """Create the (group-less) consumer used for every read."""
        self._consumer = _reader(config)

    def end(self, topic: str, partition: int, timeout_s: float = 30.0) -> int:
        """The end offset the broker reports (Tansu: perhaps the last batch's base, a bit less)."""
        try:
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s
            )
        except KafkaException as exc:
            raise TransientError(f"kafka watermarks {topic}[{partition}]: {exc}") from exc
        return max(int(high), 0)

    def last(self, topic: str, partition: int, timeout_s: float = 30.0) -> bytes | None:
        """The value of the last record of `topic`/`partition` (None: empty, or a tombstone).

        Read from one before the end the broker reports to the partition's end: Tansu
        may report the last batch's base offset, which only means a few records more.
        """
        try:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s
            )
        except KafkaException as exc:
            raise TransientError(f"kafka watermarks {topic}[{partition}]: {exc}") from exc
        if high <= max(low, 0):
            return None
        records = self.read(topic, partition, timeout_s, start=max(low, high - 1))
        return records[-1][1] if records else None

    def read(
        self,
        topic: str,
        partition: int,
        timeout_s: float = 120.0,
        *,
        start: int = OFFSET_BEGINNING,
        enough: Callable[[list[tuple[bytes | None, bytes | None]]], bool] | None = None,
    ) -> list[tuple[bytes | None, bytes | None]]:
        """Records of `topic`/`partition` from `start` to its current end (or `enough`)."""
        consumer = self._consumer
        consumer.assign([TopicPartition(topic, partition, start)])
        records: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if time.monotonic() > deadline:
                    raise TransientError(
                        f"kafka read {topic}[{partition}]: no end in {timeout_s} s"
                    )
                for message in consumer.consume(num_messages=10_000, timeout=0.05):
                    error = message.error()
                    if error is None:
                        records.append((message.key(), message.value()))
                    elif error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                        return records
                    elif error.fatal() or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                        raise FatalError(f"kafka read {topic}[{partition}]: {error.str()}")
                if enough is not None and enough(records):
                    return records
        finally:
            consumer.unassign()

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()


class FeedReader:
    """Follows one partition of a topic from its start; `poll` never blocks for long."""

    def __init__(self, config: KafkaConfig, topic: str, partition: int = 0) -> None:
        """Assign the partition from its first record."""
        self.topic = topic
        self._partition = partition
        self._consumer = _reader(config)
        self._consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        self.at_end = False  # the last poll reached the partition's end

    def seek(self, offset: int) -> None:
        """Follow the partition from `offset` on (after an item snapshot that covers the rest)."""
        self._consumer.assign([TopicPartition(self.topic, self._partition, offset)])
        self.at_end = False

    def position(self) -> int:
        """The offset of the next record `poll` returns (the end, once `at_end`)."""
        [at] = self._consumer.position([TopicPartition(self.topic, self._partition)])
        return max(int(at.offset), 0)

    def poll(self, max_records: int, timeout_s: float = 0.0) -> list[bytes]:
        """Values that have arrived (up to `max_records`), waiting at most `timeout_s`."""
        values: list[bytes] = []
        for message in self._consumer.consume(num_messages=max_records, timeout=timeout_s):
            error = message.error()
            if error is None:
                self.at_end = False
                value = message.value()
                if value is not None:
                    values.append(value)
            elif error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                self.at_end = True
            elif error.fatal():
                raise FatalError(f"kafka read {self.topic}: {error.str()}")
        return values

    def read_past(
        self, offset: int, apply: Callable[[list[bytes]], None], timeout_s: float = 60.0
    ) -> int:
        """Apply what comes until the position is past `offset` (a record known to exist)."""
        deadline, count = time.monotonic() + timeout_s, 0
        while self.position() <= offset:
            if time.monotonic() > deadline:
                raise TransientError(f"kafka read {self.topic}: offset {offset} not reached")
            values = self.poll(1000, 0.2)
            count += len(values)
            if values:
                apply(values)
        return count

    def drain(self, apply: Callable[[list[bytes]], None], timeout_s: float = 300.0) -> int:
        """Apply everything up to the current end (a new worker's catch-up); returns records."""
        deadline, count = time.monotonic() + timeout_s, 0
        while not self.at_end:
            if time.monotonic() > deadline:
                raise TransientError(f"kafka read {self.topic}: no end in {timeout_s} s")
            values = self.poll(1000, 0.5)
            count += len(values)
            if values:
                apply(values)
        return count

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()


def partition_count(config: KafkaConfig, topic: str, timeout_s: float = 10.0) -> int | None:
    """How many partitions `topic` has, or None if it does not exist."""
    consumer = _reader(config)
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)
    except KafkaException as exc:
        raise TransientError(f"kafka metadata {topic}: {exc}") from exc
    finally:
        consumer.close()
    found = meta.topics.get(topic)
    if found is None or found.error is not None:
        return None
    return len(found.partitions)
