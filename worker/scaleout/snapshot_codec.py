"""The item snapshot's records, as msgpack: one per item on partition 0, markers on partition 1.

`{items topic}.snapshot` (`worker.scaleout.snapshot`): an item record (key = the
item id, so compaction keeps each item's newest) holds the item's agreed state
as one delta from its seeded start and its transition ring by id; a marker
says where that snapshot's records start and where the feed goes on after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack
import numpy as np

from worker.scaleout.codec import FORMAT


@dataclass(frozen=True)
class SnapshotItem:
    """One item's agreed state in a snapshot: its delta from the seeded start, and its ring."""

    snap: str  # the snapshot it belongs to
    item: str
    weight: np.ndarray  # (width,)
    grad_sq: np.ndarray  # (2,)
    context: np.ndarray  # (width,) or (0,)
    context_grad_sq: np.ndarray  # (2,) or (0,)
    mass: float  # its clicks' mass decayed to the snapshot's clock (0: none)
    successors: list[str]  # its transition ring, by id
    successor_weights: np.ndarray  # (len(successors),)


def encode_snapshot_item(record: SnapshotItem) -> bytes:
    """One snapshot record (key: the item id, so compaction keeps each item's newest)."""
    packed: bytes = msgpack.packb(
        {
            "v": FORMAT,
            "kind": "snapshot_item",
            "snap": record.snap,
            "id": record.item,
            "w": record.weight.astype("<f4").tobytes(),
            "g": record.grad_sq.astype("<f4").tobytes(),
            "cw": record.context.astype("<f4").tobytes(),
            "cg": record.context_grad_sq.astype("<f4").tobytes(),
            "m": float(record.mass),
            "succ": record.successors,
            "sw": record.successor_weights.astype("<f4").tobytes(),
        }
    )
    return packed


def decode_snapshot_item(value: bytes) -> SnapshotItem:
    """A snapshot record; `ValueError` for one this version cannot read."""
    raw = msgpack.unpackb(value)
    if not isinstance(raw, dict) or raw.get("kind") != "snapshot_item" or raw.get("v") != FORMAT:
        raise ValueError("not an item snapshot record of format 1")

    def floats(name: str) -> np.ndarray:
        return np.frombuffer(raw[name], dtype="<f4").astype(np.float32)

    successors = list(raw["succ"])
    weights = floats("sw")
    if len(weights) != len(successors):
        raise ValueError("item snapshot record of uneven ring arrays")
    return SnapshotItem(
        raw["snap"],
        raw["id"],
        floats("w"),
        floats("g"),
        floats("cw"),
        floats("cg"),
        float(raw["m"]),
        successors,
        weights,
    )


@dataclass(frozen=True)
class SnapshotMarker:
    """Written after a snapshot's records: where they start, and where the feed goes on."""

    snap: str
    start: int  # partition 0 offset at or before its first record
    items: int  # how many records it holds
    feed: int  # the item feed's offset the snapshot reflects everything before
    applied: dict[str, int]  # origin -> highest seq folded in (re-deliveries after are skipped)
    clock: float  # the writer's prior clock


def encode_snapshot_marker(marker: SnapshotMarker) -> bytes:
    """The marker record (partition 1 of the snapshot topic)."""
    packed: bytes = msgpack.packb(
        {
            "v": FORMAT,
            "kind": "snapshot_marker",
            "snap": marker.snap,
            "start": marker.start,
            "items": marker.items,
            "feed": marker.feed,
            "applied": marker.applied,
            "clock": marker.clock,
        }
    )
    return packed


def decode_snapshot_marker(value: bytes) -> SnapshotMarker:
    """A marker record; `ValueError` for one this version cannot read."""
    raw = msgpack.unpackb(value)
    if not isinstance(raw, dict) or raw.get("kind") != "snapshot_marker" or raw.get("v") != FORMAT:
        raise ValueError("not an item snapshot marker of format 1")
    return SnapshotMarker(
        raw["snap"],
        int(raw["start"]),
        int(raw["items"]),
        int(raw["feed"]),
        {str(k): int(v) for k, v in raw["applied"].items()},
        float(raw["clock"]),
    )
