"""Scale-out as one loop hook: hand-over at each rebalance, the item feed at each tick.

The package's overview is `worker.scaleout`'s docstring. `ScaleOut` ties the
parts together: `Ownership` (users through the state topic), `ItemFeed`
(items, pairs and the ranker through the item feed), `SnapshotTopic` (the
item snapshot) and `ScaleMetrics`; `build.build_scale` makes one from the
settings, and the consumer asks `start_at` where newly assigned partitions
start (their users restored meanwhile).
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import structlog

from stream.batch import DecodedBatch
from stream.errors import TransientError
from stream.kafka import KafkaSource
from stream.sync_topics import FeedReader, PartitionReader, SyncProducer
from worker.engine.engine import Engine
from worker.engine.results import Learned
from worker.loop.hooks import Loop, Parts
from worker.observability.metrics import WorkerMetrics
from worker.scaleout import snapshot
from worker.scaleout.item_deltas import ItemSync
from worker.scaleout.item_feed import ItemFeed
from worker.scaleout.metrics import ScaleMetrics
from worker.scaleout.ownership import Ownership
from worker.scaleout.snapshot_topic import SnapshotTopic
from worker.scaleout.transitions import TransitionSync

log = structlog.get_logger("recstream.worker")


@dataclass(frozen=True)
class ScaleConfig:
    """Where the shared state lives and how often it moves."""

    topic: str  # the input topic
    state_topic: str
    items_topic: str
    item_sync_s: float = 1.0
    state_flush_s: float = 10.0
    snapshot_topic: str = ""  # the item snapshot (worker/scaleout/snapshot.py); empty: none
    item_snapshot_s: float = 300.0  # how often the owner of input partition 0 writes one


def _nothing() -> None:
    """Before `attach` there is no write in flight to finish."""


class ScaleOut:
    """Plugs scale-out into the loop: users follow their partitions, items are shared."""

    def __init__(
        self,
        config: ScaleConfig,
        engine: Engine,
        *,
        producer: SyncProducer,
        reader: PartitionReader,
        feed: FeedReader,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        """Wire the parts; `attach` lends the consumer and the offsets once the worker exists."""
        self.config = config
        self.engine = engine
        self.producer = producer
        self.reader = reader
        self.feed = feed
        self.origin = uuid.uuid4().hex[:12]
        self.measures = ScaleMetrics(metrics)
        self.ownership = Ownership(
            config.topic,
            config.state_topic,
            engine,
            origin=self.origin,
            producer=producer,
            reader=reader,
            measures=self.measures,
        )
        self.item_feed = ItemFeed(
            config.items_topic,
            engine,
            origin=self.origin,
            producer=producer,
            feed=feed,
            measures=self.measures,
        )
        self.snapshots = (
            SnapshotTopic(
                config.snapshot_topic,
                engine,
                self.item_feed,
                producer=producer,
                reader=reader,
                feed=feed,
            )
            if config.snapshot_topic
            else None
        )
        self.source: KafkaSource | None = None
        self.learned_offsets: Mapping[tuple[str, int], int] = {}
        self._drain: Callable[[], None] = _nothing
        now = time.monotonic()
        self._next_sync = now + config.item_sync_s
        self._next_flush = now + config.state_flush_s
        self._next_snapshot = now + config.item_snapshot_s
        self.catch_up_records = 0  # records the start read: the snapshot's and the feed's

    # -- what tests, tools and a debugger look at -------------------------------------------

    @property
    def items(self) -> ItemSync:
        """The item rows' unsent changes and their base."""
        return self.item_feed.items

    @property
    def transitions(self) -> TransitionSync | None:
        """The transition pairs learned here and not sent yet (None: no transition term)."""
        return self.item_feed.transitions

    @property
    def owned(self) -> set[int]:
        """The input partitions this worker holds."""
        return self.ownership.ledger.owned

    @property
    def unflushed(self) -> int:
        """Changed users and evicted ids not yet written to the state topic (0: all written)."""
        return self.ownership.ledger.unflushed

    @property
    def staleness_s(self) -> deque[float]:
        """The last folds' staleness, in seconds (a bounded window; the histogram keeps all)."""
        return self.measures.staleness_s

    @property
    def snapshots_written(self) -> int:
        """Item snapshots this worker wrote."""
        return self.snapshots.written if self.snapshots is not None else 0

    @property
    def _seq(self) -> int:
        """The last item-feed record's seq (tests wait for it to move)."""
        return self.item_feed.seq

    # -- the start --------------------------------------------------------------------------

    def catch_up(self) -> int:
        """Start with the current item table: the last item snapshot, then the feed after it.

        Without a snapshot, the whole feed. Returns the records read (both topics).
        """
        start = time.perf_counter()
        loaded = self.snapshots.load() if self.snapshots is not None else None
        feed_from = 0
        if loaded is not None:
            feed_from = loaded[1]
            self.feed.seek(feed_from)
        records = self.feed.drain(self.item_feed.fold)
        snapshot_records = loaded[0] if loaded is not None else 0
        log.info(
            "item_feed_replayed",
            topic=self.config.items_topic,
            records=records,
            from_offset=feed_from,
            snapshot_records=snapshot_records,
            items=len(self.engine.learner.items),
            duration_ms=round((time.perf_counter() - start) * 1000, 1),
        )
        self.catch_up_records = snapshot_records + records
        return self.catch_up_records

    def start_at(self, parts: Parts) -> dict[tuple[str, int], int]:
        """Restore assigned partitions' users; where each partition's input starts (the hook)."""
        topic = self.config.topic
        ours = [(t, p) for t, p in parts if t == topic]
        committed = self.source.committed(ours) if self.source is not None and ours else {}
        starts = self.ownership.restore({p: committed.get((t, p)) for t, p in ours})
        return {(topic, p): offset for p, offset in starts.items()}

    # -- the loop's hooks -------------------------------------------------------------------

    def attach(self, loop: Loop) -> None:
        """The consumer (for committed offsets), the offsets learned, and the loop's drain."""
        self.source = loop.source
        self.learned_offsets = loop.learned_offsets
        self._drain = loop.drain

    def after_batch(self, batch: DecodedBatch, learned: Learned | None) -> None:
        """Note which partition each user row came from, which rows changed, and item changes."""
        if not len(batch):
            return
        rows = self.engine.known_user_rows(batch.users)
        held = rows >= 0
        ids = np.asarray(batch.users, dtype=object)[held]
        partitions = np.asarray(batch.partitions, dtype=np.int32)[held]
        self.ownership.ledger.hold(rows[held], ids, partitions, changed=True)
        self.item_feed.note(batch, learned)

    def due(self) -> bool:
        """Whether the next `tick` sends items or flushes user state."""
        now = time.monotonic()
        return now >= self._next_sync or (now >= self._next_flush and bool(self.owned))

    def tick(self) -> None:
        """Send the item delta and flush user state when due; fold in the others' records."""
        if self.due():  # what goes out must hold published batches only; between sends, the
            self._drain()  # write in flight overlaps the next batch
        now = time.monotonic()
        if now >= self._next_sync:
            self._next_sync = now + self.config.item_sync_s
            self.item_feed.send()
        self.item_feed.poll()
        if (
            self.snapshots is not None
            and now >= self._next_snapshot
            and snapshot.WRITER_PARTITION in self.owned
        ):
            self._next_snapshot = now + self.config.item_snapshot_s
            try:
                self.snapshots.write()
            except TransientError as exc:  # tried again at the next interval; the feed stays
                log.warning("item_snapshot_failed", error=str(exc))
        if now >= self._next_flush and self.owned:
            self._next_flush = now + self.config.state_flush_s
            self.ownership.flush_owned(self.learned_offsets)

    def revoked(self, parts: Parts) -> None:
        """Hand the revoked partitions' users over (flush, wait for acks), then drop them."""
        ours = [p for t, p in parts if t == self.config.topic]
        self.ownership.hand_over(ours, self.learned_offsets)

    def lost(self, parts: Parts) -> None:
        """Partitions lost without a revoke: drop their users, write nothing (not ours now)."""
        self.ownership.lost([p for t, p in parts if t == self.config.topic])

    def close(self) -> None:
        """Send what is unsent, then close the clients (after the consumer's last revoke)."""
        try:
            self.item_feed.send()
            self.producer.flush(10.0)
        except TransientError as exc:
            log.warning("item_sync_unsent_at_close", error=str(exc))
        self.producer.close()
        self.reader.close()
        self.feed.close()
