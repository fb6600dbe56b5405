"""The item snapshot: a new worker's catch-up reads the catalogue, not the feed's history.

The item feed only grows (a delta per worker per `item_sync_s`), so replaying it
from offset 0 costs what its retention holds. The owner of input partition 0
writes, every `RECSTREAM_ITEM_SNAPSHOT_S`, one record per live item to partition 0
of `{items topic}.snapshot` (key = item id, compacted where the broker allows):
the item's agreed state as one delta from its seeded start, with its transition
ring; then a marker on partition 1 with the feed offset the snapshot reflects
everything before. A new worker reads the last marker, that snapshot's records
(O(items)), and the feed from the marker's offset on.

The cut is consistent: before taking it the writer sends what it has unsent,
waits for the acknowledgements and folds the feed to its end, so every delta
before the offset is in the snapshot (its own through its base, the others'
folded) and none after it. The marker also carries the highest seq folded per
origin, so a re-delivered record after the offset is still skipped.

Here the model side: a snapshot taken from the item sync's base, and one
applied to fresh rows. Writing and reading the topic is `snapshot_topic`'s.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import structlog
import torch

from models.learner import OnlineLearner
from worker.engine.engine import Engine
from worker.scaleout.item_deltas import ItemDelta, ItemSync
from worker.scaleout.snapshot_codec import SnapshotItem, decode_snapshot_item
from worker.scaleout.transitions import TransitionPairs, TransitionSync

log = structlog.get_logger("recstream.worker")

ITEMS_PARTITION = 0  # the snapshot topic's records
MARKERS_PARTITION = 1  # and its markers
WRITER_PARTITION = 0  # the owner of this input partition writes the snapshots (one at a time)


def take(learner: OnlineLearner, items: ItemSync, snap: str) -> list[SnapshotItem]:
    """One record per live item: its agreed state (`ItemSync.snapshot`) and its ring."""
    rows, delta = items.snapshot()
    mass = dict(zip(delta.click_ids, delta.click_mass.tolist(), strict=True))
    rings: list[list[str]] = [[] for _ in range(rows.size)]
    ring_weights: list[npt.NDArray[np.float32]] = [np.zeros(0, np.float32)] * rows.size
    if learner.transition is not None and rows.size:
        table = learner.transition.table
        held = rows[rows < table.capacity]
        successors, weights = (ring.cpu().numpy() for ring in table.rings(torch.from_numpy(held)))
        for n in range(held.size):
            filled = successors[n] >= 0
            ids = learner.items.ids_of(successors[n][filled].astype(np.int64))
            keep = ids != None  # noqa: E711  (elementwise)
            rings[n] = [str(i) for i in ids[keep]]
            ring_weights[n] = weights[n][filled][keep].astype(np.float32)
    return [
        SnapshotItem(
            snap,
            item,
            delta.weight[n],
            delta.grad_sq[n],
            delta.context[n],
            delta.context_grad_sq[n],
            mass.get(item, 0.0),
            rings[n],
            ring_weights[n],
        )
        for n, item in enumerate(delta.ids)
    ]


def load(
    engine: Engine,
    items: ItemSync,
    transitions: TransitionSync | None,
    values: list[bytes],
    snap: str,
    clock: float,
) -> int:
    """Apply one snapshot's records (others are skipped) to fresh rows; returns items loaded."""
    learner = engine.learner
    width = learner.config.dim + 1
    latest: dict[str, SnapshotItem] = {}
    for value in values:
        try:
            record = decode_snapshot_item(value)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("item_snapshot_unreadable", error=str(exc))
            continue
        if record.snap == snap and record.weight.size == width:
            latest[record.item] = record  # a re-delivered record: the same values again
    if not latest:
        return 0
    records = list(latest.values())
    ids = [r.item for r in records]
    context_on = all(r.context.size == width for r in records)
    none = np.zeros((len(ids), 0), np.float32)
    clicked = [r for r in records if r.mass > 0]
    delta = ItemDelta(
        ids=ids,
        weight=np.stack([r.weight for r in records]),
        grad_sq=np.stack([r.grad_sq for r in records]),
        context=np.stack([r.context for r in records]) if context_on else none,
        context_grad_sq=np.stack([r.context_grad_sq for r in records]) if context_on else none,
        click_ids=[r.item for r in clicked],
        click_mass=np.array([r.mass for r in clicked], dtype=np.float64),
        clock=clock,
        events=0,
    )
    rows = engine.admit_items(ids)
    clicks = engine.admit_items(delta.click_ids) if clicked else np.empty(0, np.int64)
    changed = items.apply(delta, rows, clicks)
    if transitions is not None:
        pairs = _ring_pairs(records)
        if pairs.ids:
            transitions.apply(pairs, engine.admit_items(pairs.ids))
    engine.index.refresh(learner.item_vectors(), changed)
    return len(records)


def _ring_pairs(records: list[SnapshotItem]) -> TransitionPairs:
    """Every ring as (item -> successor, weight) pairs over one id list."""
    index: dict[str, int] = {}
    before: list[int] = []
    after: list[int] = []
    weights: list[npt.NDArray[np.float32]] = []
    for record in records:
        if not record.successors:
            continue
        head = index.setdefault(record.item, len(index))
        before += [head] * len(record.successors)
        after += [index.setdefault(s, len(index)) for s in record.successors]
        weights.append(record.successor_weights)
    return TransitionPairs(
        list(index),
        np.array(before, dtype=np.int32),
        np.array(after, dtype=np.int32),
        np.concatenate(weights) if weights else np.zeros(0, np.float32),
    )


__all__ = ["ITEMS_PARTITION", "MARKERS_PARTITION", "WRITER_PARTITION", "load", "take"]
