"""The consumer-group member the worker reads from: micro-batches in, explicit commits out.

Assignment callbacks, polling, commits and the partition-position reads of
one consumer; its settings, error mapping, committed-offset reads and the
admin and producer clients live beside it (`stream.kafka_config`,
`stream.kafka_errors`, `stream.committed`, `stream.kafka_admin`,
`stream.click_producer`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from stream.committed import committed_offsets
from stream.errors import FatalError
from stream.kafka_config import CONSUMER_DEFAULTS, KafkaConfig
from stream.kafka_errors import GENERATION_LOST, PARTITION_EOF, raise_for
from stream.oversize import ResponseWatch, Unfetchable, probe

PartitionHook = Callable[[list[tuple[str, int]]], None]
# scale-out hook: where newly assigned partitions start (their handed-over state's offset)
StartHook = Callable[[list[tuple[str, int]]], Mapping[tuple[str, int], int]]


@dataclass
class Polled:
    """Messages from one `consume`, with non-fatal client errors set apart for logging."""

    messages: list[Message] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class KafkaSource:
    """A consumer-group member that hands out micro-batches and commits explicit offsets."""

    def __init__(
        self,
        config: KafkaConfig,
        topic: str,
        *,
        on_assign: PartitionHook | None = None,
        on_revoke: PartitionHook | None = None,
        start_offsets: Mapping[tuple[str, int], int] | None = None,
        start_at: StartHook | None = None,
        on_lost: PartitionHook | None = None,
    ) -> None:
        """Create the consumer and subscribe; `config` must hold `group.id`.

        `start_offsets` (from a model checkpoint) override the committed offsets
        the first time each partition is assigned, so the model re-reads what
        it had not yet learned when the checkpoint was written.

        Scale-out hooks: `start_at` is asked, before anything is consumed from newly
        assigned partitions, where each starts (it restores their state meanwhile);
        `on_lost` (default: `on_revoke`) hears of partitions lost without a revoke.
        """
        self._start_offsets = dict(start_offsets or {})
        if "group.id" not in config:
            raise FatalError("kafka consumer config needs group.id")
        self.topic = topic
        self.assigned: set[tuple[str, int]] = set()
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._revoke_first: list[PartitionHook] = []
        self._start_at = start_at
        self._on_lost = on_lost or on_revoke
        # client-level errors: a refused (too large) fetch response is noticed here
        self._watch = ResponseWatch()
        self._config = {**CONSUMER_DEFAULTS, **config}
        # cooperative-sticky: assign and revoke hand over the partitions that move, only
        self.cooperative = self._config.get("partition.assignment.strategy") == (
            "cooperative-sticky"
        )
        try:
            self._consumer = Consumer(
                cast("dict[str, Any]", {"error_cb": self._watch, **self._config})
            )
        except KafkaException as exc:
            raise FatalError(f"kafka consumer config rejected: {exc}") from exc
        self._consumer.subscribe(
            [topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        parts = [(p.topic, p.partition) for p in partitions]
        if self._start_at is not None:  # scale-out: the handed-over state's offsets win
            self._start_offsets.update(self._start_at(parts))
        if any(part in self._start_offsets for part in parts):
            for p in partitions:
                start = self._start_offsets.pop((p.topic, p.partition), None)
                if start is not None:
                    p.offset = start
            if self.cooperative:  # `partitions` are the ones added, not the whole assignment
                consumer.incremental_assign(partitions)
            else:
                consumer.assign(partitions)
        self.assigned.update(parts)
        if self._on_assign:
            self._on_assign(parts)

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        parts = [(p.topic, p.partition) for p in partitions]
        for hook in self._revoke_first:
            hook(parts)
        if self._on_revoke:
            self._on_revoke(parts)
        self.assigned.difference_update(parts)

    def _lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        parts = [(p.topic, p.partition) for p in partitions]
        for hook in self._revoke_first:  # its commit fails now, but the write is finished first
            hook(parts)
        if self._on_lost:
            self._on_lost(parts)
        self.assigned.difference_update(parts)

    def committed(
        self, parts: list[tuple[str, int]], timeout_s: float = 10.0, attempts: int = 3
    ) -> dict[tuple[str, int], int]:
        """The group's committed offsets of `parts` (absent: none committed yet).

        Read while partitions are assigned: a broker too slow to answer in time
        (a timed-out read) is asked again, up to `attempts` times, rather than
        failing the worker; any other error, or the last time-out, is raised.
        """
        return committed_offsets(self._consumer, parts, timeout_s, attempts)

    def poll(self, max_messages: int, timeout_s: float) -> Polled:
        """Whatever has arrived, up to `max_messages`; waits up to `timeout_s` only when none has.

        Latency-first: a batch is what arrived while the last one was processed,
        so light load costs little more than the processing and heavy load still
        gives full batches. When nothing is there it blocks for the first message
        only, and takes with it whatever else is fetched by then.
        """
        polled = Polled()
        deadline = time.monotonic() + timeout_s
        self._take(self._consume(max_messages, 0.0), polled)
        while not polled.messages:
            remaining = deadline - time.monotonic()
            first = self._consume(1, remaining) if remaining > 0 else []
            if not first:
                break
            self._take(first, polled)
            if polled.messages and max_messages > 1:
                self._take(self._consume(max_messages - 1, 0.0), polled)
        polled.errors += self._watch.take_errors()
        return polled

    def unfetchable(self, positions: Mapping[tuple[str, int], int]) -> list[Unfetchable]:
        """Records this consumer cannot fetch, found once a fetch response was refused as too large.

        Nothing (and no work) unless librdkafka refused a response since the last
        call. Then each assigned partition behind its end is probed alone from its
        next offset (`positions`, else the consumer's position or the group's commit).
        """
        if self._watch.take_refused() is None:
            return []
        starts: dict[tuple[str, int], int] = {}
        for topic, partition in sorted(self.assigned):
            tp = TopicPartition(topic, partition)
            try:
                low, high = self._consumer.get_watermark_offsets(tp, timeout=5.0)
                start = positions.get((topic, partition))
                if start is None:
                    [at] = self._consumer.position([tp])
                    start = at.offset if at.offset >= 0 else None
                if start is None:
                    start = self.committed([(topic, partition)]).get((topic, partition), low)
            except KafkaException as exc:
                raise_for(exc.args[0], "find where a partition stands")
            if start < high:
                starts[topic, partition] = max(start, low)
        return probe(self._config, starts) if starts else []

    def skip(self, topic: str, partition: int, offset: int) -> None:
        """Fetch `partition` from `offset` on (past records it cannot fetch)."""
        try:
            self._consumer.seek(TopicPartition(topic, partition, offset))
        except KafkaException as exc:
            raise_for(exc.args[0], "seek past an unfetchable record")

    def _consume(self, count: int, timeout_s: float) -> list[Message]:
        try:
            return self._consumer.consume(num_messages=count, timeout=timeout_s)
        except KafkaException as exc:
            raise_for(exc.args[0], "consume")

    @staticmethod
    def _take(messages: list[Message], polled: Polled) -> None:
        for message in messages:
            error = message.error()
            if error is None:
                polled.messages.append(message)
            elif error.code() == PARTITION_EOF:
                continue
            elif error.fatal():
                raise_for(error, "consume")
            else:
                polled.errors.append(error.str())

    def before_revoke(self, hook: PartitionHook) -> None:
        """Call `hook` first when partitions go, while they can still be committed.

        The worker commits its batch in flight there, so the next owner starts after it.
        """
        self._revoke_first.append(hook)

    def commit(self, next_offsets: Mapping[tuple[str, int], int]) -> bool:
        """Commit synchronously; False if the group moved on and the commit was skipped.

        Only partitions still assigned are committed. If this member lost its
        generation (evicted after a long stall, or mid-rebalance), committing
        cannot succeed and retrying would wedge the loop: the batch is left
        uncommitted for the partitions' next owner to re-read (at-least-once),
        and the next `poll` rejoins the group.
        """
        offsets = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in next_offsets.items()
            if (topic, partition) in self.assigned
        ]
        if not offsets:
            return True
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() in GENERATION_LOST:
                return False
            raise_for(error, "commit")
        return True

    def topic_missing(self, timeout_s: float = 2.0) -> bool:
        """Whether the broker says the subscribed topic does not exist (False if it cannot say)."""
        try:
            meta = self._consumer.list_topics(self.topic, timeout=timeout_s)
        except KafkaException:
            return False  # no answer: the poll's own errors tell of that
        topic = meta.topics.get(self.topic)
        return topic is None or (
            topic.error is not None and topic.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        )

    def lag(self, positions: Mapping[tuple[str, int], int]) -> int:
        """Messages behind the end, over assigned partitions, from the last fetch's watermarks.

        Cached watermarks cost no round trip (and, unlike ListOffsets, Tansu
        reports them exactly). `positions` are the next offsets to process.
        """
        return sum(self._left(positions).values())

    def behind(self, positions: Mapping[tuple[str, int], int]) -> set[int]:
        """Assigned partitions of the topic with messages past `positions` (cached watermarks).

        A partition not read from yet (no position) is left out: a quiet one after a
        restart may have nothing to read ever, and must not hold anything back.
        """
        return {p for (t, p), left in self._left(positions).items() if left and t == self.topic}

    def _left(self, positions: Mapping[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """Messages left past `positions` per assigned partition that has a position."""
        left = {}
        for topic, partition in self.assigned:
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), cached=True
            )
            position = positions.get((topic, partition))
            if high >= 0 and position is not None:
                left[(topic, partition)] = max(0, high - position)
        return left

    def fetch_barrier(self, timeout_s: float = 10.0) -> None:
        """Return once every fetch response received so far is in the local queue.

        The cached high watermark is set from a fetch response before its records
        are parsed into the queue. A ListOffsets round trip is answered on the
        same broker thread, after that parse, so a caller that saw the watermark
        and then this return knows the records are there to poll (tests and the
        eval's deterministic batches; the loop never needs it).
        """
        for topic, partition in list(self.assigned):
            try:
                self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout_s, cached=False
                )
            except KafkaException as exc:
                raise_for(exc.args[0], "query watermarks")

    def close(self) -> None:
        """Leave the group so partitions move to other members at once."""
        self._consumer.close()


__all__ = ["KafkaSource", "PartitionHook", "Polled", "StartHook"]
