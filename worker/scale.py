"""Scale-out: user state follows its input partition, items are shared between workers.

The pattern is Kafka Streams' changelog, on Kafka's own mechanisms only:

- **State topic** `{topic}.state`, as many partitions as the input, key = user
  id (compacted where the broker supports it). Each user row remembers its
  input partition. Every `state_flush_s`, and on revoke, the worker writes the
  users it changed in each owned partition, then a marker holding the input
  offset that state reflects, and waits for the acknowledgements. On assign,
  before anything is consumed, the new owner reads the partition to its end,
  restores the latest record of each user, writes a marker of its own (so a
  marker always exists from here on) and starts the input at the marker:
  events after it are re-read (counted as `rereads`), never skipped. Input
  offsets are committed as before; the marker, not the commit, says where a
  new owner starts, so no commit ever waits for the state topic.
- **Item feed** `{topic}.items` (one partition): every `item_sync_s` each
  worker sends the changes of the item rows it touched (`models.item_deltas`)
  and its clicks per item, tagged (origin, seq); every worker folds in the
  others' records (its own and any seq already applied are skipped, so a
  re-delivery is harmless). Beside them go the transition pairs its batches
  added (by id), which the others add to their own successor rings. A
  starting worker reads the last item snapshot (`worker/item_snapshot.py`:
  one record per item, written by the owner of input partition 0) and the
  feed after it before it consumes, so it begins with the current item table
  (and transitions) at a cost that follows the catalogue, not the feed's
  history (the whole feed when there is no snapshot yet).

On revoke the revoked partitions' users are flushed, then dropped locally; a
partition lost without a revoke (session timeout) is dropped unflushed: its
new owner may already be writing.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import structlog
import torch

from models.handover import drop_users, export_users, import_users
from models.item_deltas import ItemSync, TransitionSync, split_pairs
from stream.batch import DecodedBatch
from stream.errors import TransientError
from stream.kafka import KafkaSource
from stream.sync_topics import FeedReader, PartitionReader, SyncProducer
from worker import item_snapshot
from worker.engine import Engine, Learned
from worker.metrics import WorkerMetrics
from worker.sync_codec import (
    MARKER_KEY,
    DeltaChunk,
    RankerChunk,
    SnapshotMarker,
    TransitionChunk,
    decode_feed,
    decode_partition,
    decode_snapshot_marker,
    encode_delta,
    encode_marker,
    encode_ranker,
    encode_snapshot_item,
    encode_snapshot_marker,
    encode_transitions,
    encode_users,
    split_delta,
)

log = structlog.get_logger("recstream.worker")

_CHUNK_ITEMS = 1000  # item rows per feed record: ~0.5 MB at dim 64
_PAIR_RECORD_BYTES = 500_000  # transition pairs per feed record: at most ~0.5 MB with ids
_FEED_BATCH = 200  # feed records folded in per tick at most (the loop keeps turning)
STALENESS_WINDOW = 1024  # folds whose staleness is kept in memory (the histogram keeps all)


@dataclass(frozen=True)
class ScaleConfig:
    """Where the shared state lives and how often it moves."""

    topic: str  # the input topic
    state_topic: str
    items_topic: str
    item_sync_s: float = 1.0
    state_flush_s: float = 10.0
    snapshot_topic: str = ""  # the item snapshot (worker/item_snapshot.py); empty: none
    item_snapshot_s: float = 300.0  # how often the owner of input partition 0 writes one


class ScaleOut:
    """The worker's side of scale-out: hand-over of partitions' users, and the item feed."""

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
        """Wire the parts; `attach` gives the source and offsets once the worker exists."""
        self.config = config
        self.metrics = metrics
        self.engine = engine
        self.producer = producer
        self.reader = reader
        self.feed = feed
        self.origin = uuid.uuid4().hex[:12]
        self.items = ItemSync(engine.learner)
        # transition pairs go out too (only with the transition term on: else nothing is kept)
        self.transitions = (
            TransitionSync(engine.learner) if engine.learner.transition is not None else None
        )
        self.source: KafkaSource | None = None
        self.learned_offsets: Mapping[tuple[str, int], int] = {}
        self.owned: set[int] = set()
        self._partition = np.full(1024, -1, dtype=np.int32)  # per user row: its input partition
        self._dirty = np.zeros(1024, dtype=bool)  # per user row: changed since the last flush
        # per user row: the id whose state this worker may have written for it (None: none).
        # A row that changes id (reused) or is freed was evicted (caps, TTL): its old id gets a
        # tombstone, so the state topic forgets it rather than restore it at the next hand-over.
        self._held_ids = np.full(1024, None, dtype=object)
        self._tombstones: dict[int, set[str]] = {}  # partition -> evicted ids not yet deleted
        self._markers: dict[int, int] = {}  # partition -> offset of the last marker written
        self._applied: dict[str, int] = {}  # origin -> highest seq folded in
        self._seq = 0
        self._ranker_sent_at = 0  # the ranker's step count when it was last sent
        self._since = 0.0  # wall time of the oldest unsent item change (0: none)
        now = time.monotonic()
        self._next_sync = now + config.item_sync_s
        self._next_flush = now + config.state_flush_s
        self._next_snapshot = now + config.item_snapshot_s
        self.snapshots_written = 0
        self.catch_up_records = 0  # records the start read: the snapshot's and the feed's
        # The last folds' staleness (now - a record's oldest change), for a look from a test or
        # a debugger; bounded, since a worker folds records for as long as it runs. The
        # histogram `recstream_item_sync_staleness_seconds` is the measure.
        self.staleness_s: deque[float] = deque(maxlen=STALENESS_WINDOW)

    def attach(self, source: KafkaSource, learned_offsets: Mapping[tuple[str, int], int]) -> None:
        """The consumer (for committed offsets) and the offsets the model has learned up to."""
        self.source = source
        self.learned_offsets = learned_offsets

    # -- start ------------------------------------------------------------------------------

    def catch_up(self) -> int:
        """Start with the current item table: the last item snapshot, then the feed after it.

        Without a snapshot, the whole feed. Returns the records read (both topics).
        """
        start = time.perf_counter()
        loaded, feed_from = self._load_snapshot(), 0
        if loaded is not None:
            feed_from = loaded[1]
            self.feed.seek(feed_from)
        records = self.feed.drain(self._fold)
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

    def _load_snapshot(self) -> tuple[int, int] | None:
        """The last complete item snapshot applied: (its records read, the feed offset after it)."""
        topic = self.config.snapshot_topic
        if not topic:
            return None
        raw = self.reader.last(topic, item_snapshot.MARKERS_PARTITION)
        if raw is None:
            return None
        try:
            marker = decode_snapshot_marker(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("item_snapshot_marker_unreadable", error=str(exc))
            return None
        records = self.reader.read(topic, item_snapshot.ITEMS_PARTITION, start=marker.start)
        values = [value for _, value in records if value is not None]
        items = item_snapshot.load(
            self.engine, self.items, self.transitions, values, marker.snap, marker.clock
        )
        if items < marker.items:  # compacted away or cut short: the whole feed, to be safe
            log.warning("item_snapshot_incomplete", snap=marker.snap, items=items, of=marker.items)
            return None
        self._applied = dict(marker.applied)
        return len(records), marker.feed

    def write_snapshot(self) -> int:
        """Write an item snapshot and its marker (the owner of input partition 0); items written.

        The cut: what is unsent goes out and is acknowledged, the feed is folded to
        its end, and the snapshot holds every delta before that offset and none after.
        """
        start = time.perf_counter()
        topic = self.config.snapshot_topic
        self._send_items()
        self.producer.flush()
        self.feed.drain(self._fold)
        # Past its own last delta too: the base holds it, so the cut must lie after it.
        own = self.producer.last_delivered(self.config.items_topic, 0)
        if own is not None:
            self.feed.read_past(own, self._fold)
        feed_at = self.feed.position()
        snap = f"{self.origin}-{self.snapshots_written + 1}"
        records = item_snapshot.take(self.engine.learner, self.items, snap)
        self.producer.mark()
        for record in records:
            value = encode_snapshot_item(record)
            self.producer.send(topic, record.item.encode(), value, item_snapshot.ITEMS_PARTITION)
        self.producer.flush()
        first = self.producer.first_since_mark(topic, item_snapshot.ITEMS_PARTITION)
        if first is None:  # no record (no items yet): the end is as good a start as any
            first = self.reader.end(topic, item_snapshot.ITEMS_PARTITION)
        applied = {**self._applied, self.origin: self._seq}
        clock = self.engine.learner.prior.clock
        marker = SnapshotMarker(
            snap, first, len(records), feed_at, applied, clock if math.isfinite(clock) else 0.0
        )
        self.producer.send(
            topic, b"marker", encode_snapshot_marker(marker), item_snapshot.MARKERS_PARTITION
        )
        self.producer.flush()
        self.snapshots_written += 1
        log.info(
            "item_snapshot_written",
            topic=topic,
            snap=snap,
            items=len(records),
            feed_offset=feed_at,
            duration_ms=round((time.perf_counter() - start) * 1000, 1),
        )
        return len(records)

    # -- partitions -------------------------------------------------------------------------

    def _grow(self, rows: int) -> None:
        if rows > self._partition.size:
            size = max(rows, 2 * self._partition.size)
            partition = np.full(size, -1, dtype=np.int32)
            partition[: self._partition.size] = self._partition
            dirty = np.zeros(size, dtype=bool)
            dirty[: self._dirty.size] = self._dirty
            held = np.full(size, None, dtype=object)
            held[: self._held_ids.size] = self._held_ids
            self._partition, self._dirty, self._held_ids = partition, dirty, held

    def _rows_of(self, partition: int, *, dirty_only: bool) -> np.ndarray:
        extent = self.engine.learner.users.extent
        self._grow(extent)
        mask = (self._partition[:extent] == partition) & self.engine.learner.users.live_mask()
        if dirty_only:
            mask &= self._dirty[:extent]
        return np.flatnonzero(mask).astype(np.int64)

    def start_at(self, parts: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Restore assigned partitions' users; where each partition's input starts (the hook)."""
        ours = [(t, p) for t, p in parts if t == self.config.topic]
        committed = self.source.committed(ours) if self.source is not None and ours else {}
        starts: dict[tuple[str, int], int] = {}
        for topic, partition in ours:
            starts[topic, partition] = self._restore(partition, committed.get((topic, partition)))
        self.producer.flush()  # the new markers are durable before anything is consumed
        return starts

    def _restore(self, partition: int, committed: int | None) -> int:
        start = time.perf_counter()
        engine, learner = self.engine, self.engine.learner
        records = self.reader.read(self.config.state_topic, partition)
        read_s = time.perf_counter() - start
        state = decode_partition(records, learner.config.dim + 1)
        rows = engine.admit_users(state.users.ids) if state.users.ids else np.empty(0, np.int64)
        restored = import_users(
            learner, engine.history, engine.rows.users, state.users, rows, engine.admit_items
        )
        self._grow(learner.users.extent)
        kept = rows >= 0
        held = rows[kept]
        ids = np.asarray(state.users.ids, dtype=object)[kept]
        self._evicted(held[(self._held_ids[held] != None) & (self._held_ids[held] != ids)])  # noqa: E711
        self._partition[held] = partition
        self._dirty[held] = False
        self._held_ids[held] = ids
        # No marker yet (a partition never handed over): the group's commit, else its start.
        offset = state.marker if state.marker is not None else (committed or 0)
        self._mark(partition, offset)
        self.owned.add(partition)
        rereads = max(0, (committed or 0) - offset)
        if self.metrics is not None:
            self.metrics.users_handed_over.labels(direction="in").inc(restored)
            self.metrics.rereads.inc(rereads)
            elapsed = time.perf_counter() - start
            self.metrics.handover_seconds.labels(direction="in").observe(elapsed)
        log.info(
            "partition_restored",
            partition=partition,
            records=state.records,
            users=restored,
            start_offset=offset,
            committed=committed,
            rereads=rereads,
            read_ms=round(read_s * 1000, 1),
            duration_ms=round((time.perf_counter() - start) * 1000, 1),
        )
        return offset

    def _mark(self, partition: int, offset: int) -> None:
        self.producer.send(
            self.config.state_topic, MARKER_KEY, encode_marker(offset, self.origin), partition
        )
        self._markers[partition] = offset

    def revoked(self, parts: list[tuple[str, int]]) -> None:
        """Hand the revoked partitions' users over (flush, wait for acks), then drop them."""
        ours = [p for t, p in parts if t == self.config.topic]
        start = time.perf_counter()
        users = self._flush(ours)
        self._drop(ours)
        if self.metrics is not None:
            self.metrics.users_handed_over.labels(direction="out").inc(users)
            elapsed = time.perf_counter() - start
            self.metrics.handover_seconds.labels(direction="out").observe(elapsed)
        log.info(
            "partitions_handed_over",
            partitions=ours,
            users=users,
            duration_ms=round((time.perf_counter() - start) * 1000, 1),
        )

    def lost(self, parts: list[tuple[str, int]]) -> None:
        """Partitions lost without a revoke: drop their users, write nothing (not ours now)."""
        ours = [p for t, p in parts if t == self.config.topic]
        self._drop(ours)
        log.warning("partitions_lost", partitions=ours, flushed=False)

    def _drop(self, partitions: list[int]) -> None:
        for partition in partitions:
            rows = self._rows_of(partition, dirty_only=False)
            drop_users(self.engine.learner, rows)
            self._partition[rows] = -1
            self._dirty[rows] = False
            self._held_ids[rows] = None
            self.owned.discard(partition)
            self._markers.pop(partition, None)
            self._tombstones.pop(partition, None)  # not ours to write now

    def _flush(self, partitions: list[int]) -> int:
        """Write changed users and a marker per partition, and wait for the acknowledgements."""
        engine, topic = self.engine, self.config.topic
        users = 0
        self._note_freed()
        for partition in partitions:
            offset = self.learned_offsets.get((topic, partition))
            self._send_tombstones(partition)
            rows = self._rows_of(partition, dirty_only=True)
            if rows.size:
                state = export_users(engine.learner, engine.history, engine.rows.users, rows)
                for key, value in encode_users(state):
                    self.producer.send(self.config.state_topic, key, value, partition)
                users += int(rows.size)
            if offset is not None and offset != self._markers.get(partition):
                self._mark(partition, offset)
        self.producer.flush()
        for partition in partitions:
            self._dirty[self._rows_of(partition, dirty_only=True)] = False
        return users

    @property
    def unflushed(self) -> int:
        """Changed users and evicted ids not yet written to the state topic (0: all written)."""
        extent = self.engine.learner.users.extent
        self._grow(extent)
        live = self.engine.learner.users.live_mask()
        dirty = int((self._dirty[:extent] & live & (self._partition[:extent] >= 0)).sum())
        freed = int(((self._held_ids[:extent] != None) & ~live).sum())  # noqa: E711  (numpy)
        return dirty + freed + sum(len(ids) for ids in self._tombstones.values())

    def _evicted(self, rows: np.ndarray) -> None:
        """`rows` lost their users (freed or reused): queue a tombstone for each old id."""
        for row in rows.tolist():
            old, partition = self._held_ids[row], int(self._partition[row])
            if old is not None and partition in self.owned:
                self._tombstones.setdefault(partition, set()).add(old)
            self._held_ids[row] = None
            self._dirty[row] = False

    def _note_freed(self) -> None:
        """Rows freed and not reused since they were last seen (bulk LRU, TTL): evicted."""
        extent = self.engine.learner.users.extent
        self._grow(extent)
        freed = (self._held_ids[:extent] != None) & ~self.engine.learner.users.live_mask()  # noqa: E711
        self._evicted(np.flatnonzero(freed))

    def _send_tombstones(self, partition: int) -> None:
        """Delete evicted users from the state topic (a None value), unless back since."""
        ids = self._tombstones.pop(partition, set())
        users = self.engine.learner.users
        gone = [user for user in sorted(ids) if users.lookup([user])[0] < 0]
        for user in gone:  # one back since has a row again: its own write follows
            self.producer.send(self.config.state_topic, user.encode(), None, partition)
        if gone and self.metrics is not None:
            self.metrics.state_tombstones.inc(len(gone))

    # -- each batch -------------------------------------------------------------------------

    def after_batch(self, batch: DecodedBatch, learned: Learned | None) -> None:
        """Note which partition each user row came from, which rows changed, and item changes."""
        if not len(batch):
            return
        rows = self.engine.known_user_rows(batch.users)
        self._grow(self.engine.learner.users.extent)
        held = rows >= 0
        ids = np.asarray(batch.users, dtype=object)[held]
        reused = (self._held_ids[rows[held]] != None) & (self._held_ids[rows[held]] != ids)  # noqa: E711
        self._evicted(np.unique(rows[held][reused]))  # rows handed to a new user this batch
        self._partition[rows[held]] = np.asarray(batch.partitions, dtype=np.int32)[held]
        self._dirty[rows[held]] = True
        self._held_ids[rows[held]] = ids
        if self.transitions is not None:
            self.transitions.capture()  # as ids now: a later admit may hand rows to other items
        if learned is not None and learned.changed_items is not None:
            if not self._since:
                self._since = time.time()
            _, weights = batch.arrays()
            self.items.mark(learned.changed_items, batch.items, weights.tolist())

    def due(self) -> bool:
        """Whether the next `tick` sends items or flushes user state (the loop drains first)."""
        now = time.monotonic()
        return now >= self._next_sync or (now >= self._next_flush and bool(self.owned))

    def tick(self) -> None:
        """Send the item delta and flush user state when due; fold in the others' deltas."""
        now = time.monotonic()
        if now >= self._next_sync:
            self._next_sync = now + self.config.item_sync_s
            self._send_items()
        values = self.feed.poll(_FEED_BATCH, 0.0)
        if values:
            self._fold(values)
        if (
            self.config.snapshot_topic
            and now >= self._next_snapshot
            and item_snapshot.WRITER_PARTITION in self.owned
        ):
            self._next_snapshot = now + self.config.item_snapshot_s
            try:
                self.write_snapshot()
            except TransientError as exc:  # tried again at the next interval; the feed stays
                log.warning("item_snapshot_failed", error=str(exc))
        if now >= self._next_flush and self.owned:
            self._next_flush = now + self.config.state_flush_s
            start = time.perf_counter()
            try:
                users = self._flush(sorted(self.owned))
            except TransientError as exc:  # tried again at the next interval; nothing is lost
                log.warning("state_flush_failed", error=str(exc))
                return
            if users:
                log.info(
                    "state_flushed",
                    partitions=len(self.owned),
                    users=users,
                    duration_ms=round((time.perf_counter() - start) * 1000, 1),
                )

    def _send_items(self) -> None:
        self._send_transitions()
        self._send_ranker()
        if not self.items.pending:
            return
        since, self._since = self._since or time.time(), 0.0
        delta = self.items.take()
        sent = time.time()
        pieces = split_delta(delta, _CHUNK_ITEMS)
        for piece in pieces:
            self._seq += 1
            chunk = DeltaChunk(self.origin, self._seq, sent, since, piece)
            self.producer.send(self.config.items_topic, self.origin.encode(), encode_delta(chunk))
        log.debug("items_sent", items=len(delta.ids), records=len(pieces), seq=self._seq)

    def _send_ranker(self) -> None:
        """The ranker, whole, at each item sync once it has learned (it is tiny)."""
        ranker = self.engine.stages.ranker
        if ranker.steps == self._ranker_sent_at:
            return
        self._ranker_sent_at = ranker.steps
        self._seq += 1
        state = {
            k: v.numpy() for k, v in ranker.state_dict().items() if isinstance(v, torch.Tensor)
        }
        chunk = RankerChunk(self.origin, self._seq, time.time(), state)
        self.producer.send(self.config.items_topic, self.origin.encode(), encode_ranker(chunk))

    def _send_transitions(self) -> None:
        if self.transitions is None or not self.transitions.pending:
            return
        pairs = self.transitions.take()
        sent = time.time()
        # a pair is 12 bytes and brings at most two ids (msgpack: up to 5 bytes of header each)
        longest = max((len(i.encode()) for i in pairs.ids), default=0)
        pieces = split_pairs(pairs, max(1, _PAIR_RECORD_BYTES // (12 + 2 * (longest + 5))))
        for piece in pieces:
            self._seq += 1
            value = encode_transitions(TransitionChunk(self.origin, self._seq, sent, piece))
            self.producer.send(self.config.items_topic, self.origin.encode(), value)
        log.debug("transitions_sent", pairs=len(pairs.weight), records=len(pieces), seq=self._seq)

    def _fold(self, values: list[bytes]) -> None:
        """Fold other workers' delta records into the item table and refresh the index."""
        engine, learner = self.engine, self.engine.learner
        changed: list[torch.Tensor] = []
        now = time.time()
        staleness: list[float] = []
        for value in values:
            try:
                chunk = decode_feed(value)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("item_delta_unreadable", error=str(exc))
                continue
            if chunk.origin == self.origin or chunk.seq <= self._applied.get(chunk.origin, 0):
                continue
            self._applied[chunk.origin] = chunk.seq
            if self._fold_aside(chunk):
                continue
            assert isinstance(chunk, DeltaChunk)  # noqa: S101 (the feed's third kind)
            delta = chunk.delta
            if delta.weight.shape[1] != learner.config.dim + 1:
                log.error("item_delta_wrong_dim", origin=chunk.origin, width=delta.weight.shape[1])
                continue
            rows = engine.admit_items(delta.ids) if delta.ids else np.empty(0, np.int64)
            clicks = (
                engine.admit_items(delta.click_ids) if delta.click_ids else np.empty(0, np.int64)
            )
            changed.append(self.items.apply(delta, rows, clicks))
            staleness.append(now - chunk.since)
        if changed:
            rows_changed = torch.unique(torch.cat(changed))
            engine.index.refresh(learner.item_vectors(), rows_changed)
            self.staleness_s.extend(staleness)
            if self.metrics is not None:
                for seconds in staleness:
                    self.metrics.item_sync_staleness.observe(seconds)
            # staleness: from the oldest change a record carries to its rows being searchable here
            log.info(
                "items_folded",
                records=len(changed),
                items=int(rows_changed.numel()),
                staleness_ms=round(1000 * max(staleness), 1),
            )

    def _fold_aside(self, chunk: DeltaChunk | TransitionChunk | RankerChunk) -> bool:
        """Fold a record that changes no index row (a ranker, transition pairs): True if one."""
        if isinstance(chunk, RankerChunk):  # averaged into ours: gossip towards one ranker
            tensors = {k: torch.from_numpy(v) for k, v in chunk.state.items()}
            self.engine.stages.ranker.blend([dict(tensors)])
            return True
        if isinstance(chunk, TransitionChunk):  # rings only: no index row changes
            if self.transitions is not None and chunk.pairs.ids:
                self.transitions.apply(chunk.pairs, self.engine.admit_items(chunk.pairs.ids))
            return True
        return False

    def close(self) -> None:
        """Send what is unsent, then close the clients (after the consumer's last revoke)."""
        try:
            self._send_items()
            self.producer.flush(10.0)
        except TransientError as exc:
            log.warning("item_sync_unsent_at_close", error=str(exc))
        self.producer.close()
        self.reader.close()
        self.feed.close()
