"""The item snapshot on its topic: written by the owner of input partition 0, read at a start.

`snapshot` says what a snapshot holds and how it is applied; this is the
topic's side: the consistent cut (everything unsent goes out and is
acknowledged, the feed is folded to its end, past this worker's own last
delta), the records and their marker, and a starting worker's read of the
last complete snapshot (an incomplete one falls back to the whole feed).
"""

from __future__ import annotations

import math
import time

import structlog

from stream.sync_topics import FeedReader, PartitionReader, SyncProducer
from worker.engine.engine import Engine
from worker.scaleout import snapshot
from worker.scaleout.item_feed import ItemFeed
from worker.scaleout.snapshot_codec import (
    SnapshotMarker,
    decode_snapshot_marker,
    encode_snapshot_item,
    encode_snapshot_marker,
)

log = structlog.get_logger("recstream.worker")


class SnapshotTopic:
    """Writes item snapshots with their markers, and applies the last complete one at a start."""

    def __init__(
        self,
        topic: str,
        engine: Engine,
        item_feed: ItemFeed,
        *,
        producer: SyncProducer,
        reader: PartitionReader,
        feed: FeedReader,
    ) -> None:
        """Snapshots of `engine`'s items on `topic`, cut consistently with `item_feed`."""
        self.topic = topic
        self.engine = engine
        self.item_feed = item_feed
        self.producer = producer
        self.reader = reader
        self.feed = feed
        self.written = 0  # snapshots this worker wrote

    def load(self) -> tuple[int, int] | None:
        """The last complete snapshot applied: (its records read, the feed offset after it)."""
        raw = self.reader.last(self.topic, snapshot.MARKERS_PARTITION)
        if raw is None:
            return None
        try:
            marker = decode_snapshot_marker(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("item_snapshot_marker_unreadable", error=str(exc))
            return None
        records = self.reader.read(self.topic, snapshot.ITEMS_PARTITION, start=marker.start)
        values = [value for _, value in records if value is not None]
        shared = self.item_feed
        items = snapshot.load(
            self.engine, shared.items, shared.transitions, values, marker.snap, marker.clock
        )
        if items < marker.items:  # compacted away or cut short: the whole feed, to be safe
            log.warning("item_snapshot_incomplete", snap=marker.snap, items=items, of=marker.items)
            return None
        shared.applied = dict(marker.applied)
        return len(records), marker.feed

    def write(self) -> int:
        """Write a snapshot and its marker; returns the items written.

        The cut: what is unsent goes out and is acknowledged, the feed is folded to
        its end, and the snapshot holds every delta before that offset and none after.
        """
        start = time.perf_counter()
        topic, shared = self.topic, self.item_feed
        shared.send()
        self.producer.flush()
        self.feed.drain(shared.fold)
        # Past its own last delta too: the base holds it, so the cut must lie after it.
        own = self.producer.last_delivered(shared.topic, 0)
        if own is not None:
            self.feed.read_past(own, shared.fold)
        feed_at = self.feed.position()
        snap = f"{shared.origin}-{self.written + 1}"
        records = snapshot.take(self.engine.learner, shared.items, snap)
        self.producer.mark()
        for record in records:
            value = encode_snapshot_item(record)
            self.producer.send(topic, record.item.encode(), value, snapshot.ITEMS_PARTITION)
        self.producer.flush()
        first = self.producer.first_since_mark(topic, snapshot.ITEMS_PARTITION)
        if first is None:  # no record (no items yet): the end is as good a start as any
            first = self.reader.end(topic, snapshot.ITEMS_PARTITION)
        applied = {**shared.applied, shared.origin: shared.seq}
        clock = self.engine.learner.prior.clock
        marker = SnapshotMarker(
            snap, first, len(records), feed_at, applied, clock if math.isfinite(clock) else 0.0
        )
        self.producer.send(
            topic, b"marker", encode_snapshot_marker(marker), snapshot.MARKERS_PARTITION
        )
        self.producer.flush()
        self.written += 1
        log.info(
            "item_snapshot_written",
            topic=topic,
            snap=snap,
            items=len(records),
            feed_offset=feed_at,
            duration_ms=round((time.perf_counter() - start) * 1000, 1),
        )
        return len(records)
