"""The item feed: what this worker learned of items goes out, what the others learned comes in.

Every `item_sync_s` the worker sends, tagged (origin, seq) from one counter,
the changes of the item rows it touched with its clicks per item
(`item_deltas`), the transition pairs its batches added (`transitions`) and
its ranker once it has learned (`ranker_share`). It folds in the others'
records as they arrive: its own, and any seq of an origin already applied,
are skipped, so a re-delivery changes nothing. A delta's rows are then
refreshed in the index; its staleness is measured from the oldest change it
carries to that refresh.
"""

from __future__ import annotations

import time

import numpy as np
import structlog
import torch

from stream.batch import DecodedBatch
from stream.sync_topics import FeedReader, SyncProducer
from worker.engine.engine import Engine
from worker.engine.results import Learned
from worker.scaleout.codec import (
    DeltaChunk,
    RankerChunk,
    TransitionChunk,
    decode_feed,
    encode_delta,
    encode_ranker,
    encode_transitions,
    split_delta,
)
from worker.scaleout.item_deltas import ItemSync
from worker.scaleout.metrics import ScaleMetrics
from worker.scaleout.ranker_share import RankerShare
from worker.scaleout.transitions import TransitionSync, split_pairs

log = structlog.get_logger("recstream.worker")

_CHUNK_ITEMS = 1000  # item rows per feed record: ~0.5 MB at dim 64
_PAIR_RECORD_BYTES = 500_000  # transition pairs per feed record: at most ~0.5 MB with ids
_FEED_BATCH = 200  # feed records folded in per tick at most (the loop keeps turning)


class ItemFeed:
    """Sends this worker's item changes, pairs and ranker to the feed; folds in the others'."""

    def __init__(
        self,
        topic: str,
        engine: Engine,
        *,
        origin: str,
        producer: SyncProducer,
        feed: FeedReader,
        measures: ScaleMetrics,
    ) -> None:
        """Share `engine`'s items on `topic` as `origin`; transition pairs only with the term on."""
        self.topic = topic
        self.engine = engine
        self.origin = origin
        self.producer = producer
        self.feed = feed
        self.measures = measures
        learner = engine.learner
        self.items = ItemSync(learner, max_rows=engine.rows.items.limits.max_rows)
        # transition pairs go out too (only with the transition term on: else nothing is kept)
        self.transitions = TransitionSync(learner) if learner.transition is not None else None
        stages = engine.stages
        self.ranker = RankerShare(stages.ranker, stages.learned_shares())
        self.seq = 0  # the last record sent
        self.applied: dict[str, int] = {}  # origin -> highest seq folded in
        self._since = 0.0  # wall time of the oldest unsent item change (0: none)

    def note(self, batch: DecodedBatch, learned: Learned | None) -> None:
        """After a batch: its pairs as ids (rows may move later), its item changes and clicks."""
        if self.transitions is not None:
            self.transitions.capture()
        if learned is not None and learned.changed_items is not None:
            if not self._since:
                self._since = time.time()
            _, weights = batch.arrays()
            self.items.mark(learned.changed_items, batch.items, weights.tolist())

    def send(self) -> None:
        """Send what is unsent: transition pairs, the ranker, then the item delta."""
        self._send_transitions()
        self._send_ranker()
        if not self.items.pending:
            return
        since, self._since = self._since or time.time(), 0.0
        delta = self.items.take()
        sent = time.time()
        pieces = split_delta(delta, _CHUNK_ITEMS)
        for piece in pieces:
            self.seq += 1
            chunk = DeltaChunk(self.origin, self.seq, sent, since, piece)
            self.producer.send(self.topic, self.origin.encode(), encode_delta(chunk))
        log.debug("items_sent", items=len(delta.ids), records=len(pieces), seq=self.seq)

    def _send_ranker(self) -> None:
        """The ranker, whole, at each item sync once it has learned (it is tiny)."""
        state = self.ranker.take()
        if state is None:
            return
        self.seq += 1
        chunk = RankerChunk(self.origin, self.seq, time.time(), state)
        self.producer.send(self.topic, self.origin.encode(), encode_ranker(chunk))

    def _send_transitions(self) -> None:
        if self.transitions is None or not self.transitions.pending:
            return
        pairs = self.transitions.take()
        sent = time.time()
        # a pair is 12 bytes and brings at most two ids (msgpack: up to 5 bytes of header each)
        longest = max((len(i.encode()) for i in pairs.ids), default=0)
        pieces = split_pairs(pairs, max(1, _PAIR_RECORD_BYTES // (12 + 2 * (longest + 5))))
        for piece in pieces:
            self.seq += 1
            value = encode_transitions(TransitionChunk(self.origin, self.seq, sent, piece))
            self.producer.send(self.topic, self.origin.encode(), value)
        log.debug("transitions_sent", pairs=len(pairs.weight), records=len(pieces), seq=self.seq)

    def poll(self) -> None:
        """Fold in what has arrived, a bounded number of records (the loop keeps turning)."""
        values = self.feed.poll(_FEED_BATCH, 0.0)
        if values:
            self.fold(values)

    def fold(self, values: list[bytes]) -> None:
        """Fold other workers' records into the item table, rings and ranker; refresh the index."""
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
            if chunk.origin == self.origin or chunk.seq <= self.applied.get(chunk.origin, 0):
                continue
            self.applied[chunk.origin] = chunk.seq
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
            self.measures.folded(staleness)
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
            self.ranker.fold(chunk.state)
            return True
        if isinstance(chunk, TransitionChunk):  # rings only: no index row changes
            if self.transitions is not None and chunk.pairs.ids:
                self.transitions.apply(chunk.pairs, self.engine.admit_items(chunk.pairs.ids))
            return True
        return False
