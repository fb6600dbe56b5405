"""Turn a list of consumed Kafka messages into columns the learner can take at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from stream.errors import BadEvent
from stream.events import decode_event


@dataclass
class Rejected:
    """A message that broke the contract, with where it came from and why."""

    value: bytes | None
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
    messages: Sequence[Any], type_weights: Mapping[str, float] | None = None
) -> DecodedBatch:
    """Decode confluent-kafka messages (already error-free) into a `DecodedBatch`.

    A message's Kafka timestamp stands in for a missing event `ts`, and is
    kept apart as the produce time that click→Redis latency is measured from.
    """
    weights_by_type = type_weights or {}
    batch = DecodedBatch()
    offsets = batch.next_offsets
    for message in messages:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        offsets[(topic, partition)] = max(offsets.get((topic, partition), 0), offset + 1)
        _, ts_ms = message.timestamp()
        produced = ts_ms / 1000.0 if ts_ms > 0 else 0.0
        try:
            event = decode_event(message.value(), default_ts=produced)
        except BadEvent as bad:
            batch.rejected.append(
                Rejected(message.value(), message.key(), topic, partition, offset, bad.reason)
            )
            continue
        batch.users.append(event.user)
        batch.items.append(event.item)
        batch.event_ts.append(event.ts)
        batch.weights.append(event.weight * weights_by_type.get(event.type, 1.0))
        batch.produced_ts.append(produced)
    return batch
