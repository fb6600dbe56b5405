"""Turn a list of consumed Kafka messages into columns the learner can take at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt

from stream.columns import common_columns
from stream.errors import BadEvent
from stream.events import MAX_EVENT_BYTES, NO_LIMITS, SHORT_ID, EventLimits, decode_event

_JSON_START = ord("{")
# Messages decoded as one columnar run: a message the run cannot vouch for sends only its run
# one message at a time, and the per-run costs stay small beside the run's.
RUN = 1024
# A run with more than 1/this of its messages beyond the inline fast path ends the columnar
# attempts for the rest of the batch: such a batch would pay for each run twice.
UNCOMMON_SHARE = 64
_unpackb = msgpack.unpackb
_INF = float("inf")


@dataclass
class Rejected:
    """A message that broke the contract, with where it came from and why."""

    value: bytes | None = field(repr=False)  # up to the broker's limit: never in a log line
    key: bytes | None
    topic: str
    partition: int
    offset: int
    reason: str


@dataclass
class DecodedBatch:
    """Valid events as parallel columns, the rejects, and the offsets to commit after."""

    users: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    event_ts: list[float] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    produced_ts: list[float] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)  # per valid event: its input partition
    rejected: list[Rejected] = field(default_factory=list)
    # (topic, partition) -> next offset to consume, covering valid and rejected messages
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    def __len__(self) -> int:
        """Number of valid events."""
        return len(self.users)

    @property
    def messages(self) -> int:
        """Valid plus rejected messages."""
        return len(self.users) + len(self.rejected)

    def arrays(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]:
        """Event times and weights as arrays."""
        return np.asarray(self.event_ts, dtype=np.float64), np.asarray(
            self.weights, dtype=np.float32
        )


def decode_messages(
    messages: Sequence[Any],
    type_weights: Mapping[str, float] | None = None,
    limits: EventLimits = NO_LIMITS,
) -> DecodedBatch:
    """Decode confluent-kafka messages (already error-free) into a `DecodedBatch`.

    A message's Kafka timestamp stands in for a missing event `ts`, and is
    kept apart as the produce time that click→Redis latency is measured from.
    An event's weight times its type's weight is clamped to `limits.max_weight`;
    an event whose own weight is above it, or whose time is after `limits.max_ts`,
    is rejected.

    Runs of common events are decoded a column at a time (`stream.columns`); a run
    holding anything else is decoded a message at a time, with the same results.
    """
    weights_by_type = type_weights or {}
    click_weight = min(weights_by_type.get("click", 1.0), limits.max_weight)
    batch = DecodedBatch()
    columnar = True  # until a run shows the batch is not mostly common events
    for at in range(0, len(messages), RUN):
        run = messages[at : at + RUN]
        stamps = [message.timestamp()[1] for message in run]
        produced = [ms / 1000.0 if ms > 0 else 0.0 for ms in stamps]
        columns = (
            common_columns([message.value() for message in run], produced, limits.max_ts)
            if columnar
            else None
        )
        if columns is None:
            uncommon = _decode_one_by_one(run, produced, batch, weights_by_type, limits)
            columnar = uncommon <= len(run) // UNCOMMON_SHARE
            continue
        users, items, event_ts = columns
        batch.users += users
        batch.items += items
        batch.event_ts += event_ts
        batch.weights += [click_weight] * len(run)
        batch.produced_ts += produced
        partitions = [message.partition() for message in run]
        batch.partitions += partitions
        _advance(batch.next_offsets, run, partitions)
    return batch


def _advance(
    next_offsets: dict[tuple[str, int], int], run: Sequence[Any], partitions: list[int]
) -> None:
    """Raise each partition's next offset past its highest offset in `run`."""
    topics = {message.topic() for message in run}
    offsets = [message.offset() for message in run]
    if len(topics) == 1:  # the worker's one topic: a C-level pass per partition
        [topic] = topics
        for partition in set(partitions):
            key = (topic, partition)
            highest = max(compress(offsets, map(partition.__eq__, partitions)))
            if next_offsets.get(key, 0) <= highest:
                next_offsets[key] = highest + 1
        return
    for message, partition, offset in zip(run, partitions, offsets, strict=True):
        key = (message.topic(), partition)
        if next_offsets.get(key, 0) <= offset:
            next_offsets[key] = offset + 1


def _decode_one_by_one(
    messages: Sequence[Any],
    produced_at: list[float],
    batch: DecodedBatch,
    weights_by_type: Mapping[str, float],
    limits: EventLimits,
) -> int:
    """Append a run to `batch` a message at a time: the inline fast path, else `decode_event`.

    Returns how many messages the inline fast path could not take.
    """
    uncommon = 0
    max_weight, max_ts = limits.max_weight, limits.max_ts
    click_weight = min(weights_by_type.get("click", 1.0), max_weight)
    offsets = batch.next_offsets
    users, items, event_ts = batch.users, batch.items, batch.event_ts
    weights, produced_ts, partitions = batch.weights, batch.produced_ts, batch.partitions
    fast_path = _fast_msgpack
    for message, produced in zip(messages, produced_at, strict=True):
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        key = (topic, partition)
        if offsets.get(key, 0) <= offset:
            offsets[key] = offset + 1
        value = message.value()
        fast = fast_path(value, produced, max_ts)
        if fast is not None:
            users.append(fast[0])
            items.append(fast[1])
            event_ts.append(fast[2])
            weights.append(click_weight)
            produced_ts.append(produced)
            partitions.append(partition)
            continue
        uncommon += 1
        try:
            event = decode_event(value, default_ts=produced, limits=limits)
        except BadEvent as bad:
            batch.rejected.append(
                Rejected(value, message.key(), topic, partition, offset, bad.reason)
            )
            continue
        users.append(event.user)
        items.append(event.item)
        event_ts.append(event.ts)
        weights.append(min(event.weight * weights_by_type.get(event.type, 1.0), max_weight))
        produced_ts.append(produced)
        partitions.append(partition)
    return uncommon


def _fast_msgpack(  # noqa: C901, PLR0911  (a flat run of early exits is the fast path's point)
    value: bytes | None, produced: float, max_ts: float = _INF
) -> tuple[str, str, float] | None:
    """The common event (`{user, item[, ts]}` msgpack, short ids) decoded inline, else None.

    Accepts a strict subset of what `decode_event` accepts and returns the same
    fields; anything unusual (JSON, `type`, `weight`, extra keys, long ids, any
    doubt) returns None so the full decoder decides, with its reason.
    """
    if not value or value[0] == _JSON_START or len(value) > MAX_EVENT_BYTES:
        return None
    try:
        # msgpack's defaults (raw=False, str keys only) suit the common case, and passing no
        # keyword arguments is measurably cheaper per call; anything else takes the full path.
        event = _unpackb(value)
    except Exception:  # noqa: BLE001  (the full decoder names the failure)
        return None
    if type(event) is not dict:
        return None
    user, item = event.get("user"), event.get("item")
    if type(user) is int:
        user = str(user)
    if type(item) is int:
        item = str(item)
    if type(user) is not str or type(item) is not str:
        return None
    if not (0 < len(user) <= SHORT_ID and 0 < len(item) <= SHORT_ID):
        return None
    ts = event.get("ts")
    if ts is None:
        if len(event) != 2 or produced > max_ts:  # noqa: PLR2004  (user and item only)
            return None
        return user, item, produced
    if len(event) != 3 or (type(ts) is not float and type(ts) is not int):  # noqa: PLR2004
        return None
    ts = float(ts)
    if not 0.0 <= ts <= max_ts or ts == _INF:
        return None
    return user, item, ts
