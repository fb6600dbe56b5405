"""The loop's one hook protocol: what optional parts plug into, and what the loop lends them.

Scale-out, catalogue control and the checkpointer are services the loop
drives at fixed points (Faust's `on_partitions_assigned/revoked` habit), so
the loop itself holds no branch for any of them: `build_worker` picks the
hooks, the loop calls each in order.

- `attach(loop)`: once, when the worker exists; a hook keeps what it needs of `Loop`.
- `tick()`: every step, before the poll (a hook that sends what batches
  learned calls `loop.drain()` first, so only published batches go out).
- `after_batch(batch, learned)`: once a batch is learned, ranked and its
  predecessor committed, before its own write is handed to the publisher.
- `revoked(parts)`: partitions leave (the write in flight already committed).
- `lost(parts)`: partitions left without a revoke (their new owner may be writing).
- `close()`: last, after the consumer left the group (its final revoke ran).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from stream.batch import DecodedBatch
    from stream.kafka import KafkaSource
    from worker.engine.engine import Engine
    from worker.engine.results import Learned

Parts = list[tuple[str, int]]  # (topic, partition) pairs


class Loop(Protocol):
    """What the loop lends its hooks: its parts, and the few moves they may ask of it."""

    @property
    def source(self) -> KafkaSource:
        """The consumer (committed offsets, the assignment)."""
        ...

    @property
    def engine(self) -> Engine:
        """The model side: learner, history, index, catalogue."""
        ...

    @property
    def learned_offsets(self) -> Mapping[tuple[str, int], int]:
        """The offsets the model has learned up to, kept current by the loop."""
        ...

    def drain(self) -> None:
        """Finish the write in flight: wait for it, flush the DLQ, commit what it covers."""
        ...

    def flush_dead_letters(self) -> None:
        """Deliver what was sent to the DLQ (counted, not retried)."""
        ...

    def publish_cold_start(self) -> None:
        """Write the cold-start list now (what it may name has changed)."""
        ...


class LoopHook(Protocol):
    """A part the loop drives at its fixed points; every method is called, none is optional."""

    def attach(self, loop: Loop) -> None:
        """Keep what is needed of `loop`; called once, when the worker is built."""
        ...

    def tick(self) -> None:
        """Every loop step, before its poll."""
        ...

    def after_batch(self, batch: DecodedBatch, learned: Learned | None) -> None:
        """A batch was learned (`learned` None: no valid event in it); its write starts next."""
        ...

    def revoked(self, parts: Parts) -> None:
        """Partitions leave this worker; the write in flight is already committed."""
        ...

    def lost(self, parts: Parts) -> None:
        """Partitions were lost without a revoke (a session timeout)."""
        ...

    def close(self) -> None:
        """The worker stops: after the consumer's last revoke."""
        ...
