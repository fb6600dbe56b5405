"""Turn a list of consumed Kafka messages into columns the learner can take at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt

from stream.errors import BadEvent
from stream.events import MAX_EVENT_BYTES, MAX_ID_BYTES, NO_LIMITS, EventLimits, decode_event

_JSON_START = ord("{")
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
    """
    weights_by_type = type_weights or {}
    max_weight, max_ts = limits.max_weight, limits.max_ts
    click_weight = min(weights_by_type.get("click", 1.0), max_weight)
    batch = DecodedBatch()
    offsets = batch.next_offsets
    users, items, event_ts = batch.users, batch.items, batch.event_ts
    weights, produced_ts, partitions = batch.weights, batch.produced_ts, batch.partitions
    fast_path = _fast_msgpack
    for message in messages:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        key = (topic, partition)
        if offsets.get(key, 0) <= offset:
            offsets[key] = offset + 1
        ts_ms = message.timestamp()[1]
        produced = ts_ms / 1000.0 if ts_ms > 0 else 0.0
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
    return batch


_SHORT_ID = MAX_ID_BYTES // 4  # a str this short is within the byte limit in any UTF-8


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
    if not (0 < len(user) <= _SHORT_ID and 0 < len(item) <= _SHORT_ID):
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
