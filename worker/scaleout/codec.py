"""The records of the scale-out topics, as msgpack: user state, partition markers, the feed.

State topic (`{topic}.state`, key = user id): a user record holds one user's
`worker.scaleout.handover.UserRows` row. Workers of the two-ring format read a
second, recent-item ring "r" (and its count "rw") and fail without it, so during a
rolling upgrade each record still carries one, made from the seen history's newest
clicks; records of those workers carry theirs, which is ignored (the seen history
"s" holds the same clicks). The marker record (its key longer than
any user id can be, so no user owns it) holds the input offset that the
partition's state reflects. Item feed (`{topic}.items`): one delta chunk per
record, or one chunk of transition pairs (`"kind": "transitions"`), or a ranker
(`"kind": "ranker"`), tagged (origin, seq) from one counter so a re-delivered
record is recognised and skipped. The item snapshot's records are
`worker.scaleout.snapshot_codec`'s. Floats travel as raw little-endian arrays:
exact, and a fraction of msgpack's per-float cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from stream.events import MAX_ID_BYTES
from worker.scaleout.handover import UserRows
from worker.scaleout.item_deltas import ItemDelta
from worker.scaleout.transitions import TransitionPairs

FORMAT = 1
# The two-ring format's recent ring: its default width (RECSTREAM_RECENT_ITEMS).
TWO_RING_WIDTH = 16
MARKER_KEY = b"#" * (MAX_ID_BYTES + 1)  # longer than any user id: no user can own it


def encode_users(state: UserRows) -> list[tuple[bytes, bytes]]:
    """One (key, value) record per user."""
    out = []
    for n, user in enumerate(state.ids):
        value = {
            "v": FORMAT,
            "w": state.weight[n].astype("<f4").tobytes(),
            "g": state.grad_sq[n].astype("<f4").tobytes(),
            "s": state.seen[n],
            "sw": int(state.seen_written[n]),
            "ts": float(state.last_ts[n]),
            "ls": float(state.last_seen[n]),
        }
        value["r"], value["rw"] = two_ring_recent(state.seen[n], int(state.seen_written[n]))
        out.append((user.encode(), msgpack.packb(value)))
    return out


def two_ring_recent(seen: list[str | None], written: int) -> tuple[list[str | None], int]:
    """The recent ring a two-ring worker expects: the newest clicks, oldest first, and their count.

    `seen` is the seen history's filled slots in slot order; once the ring has wrapped,
    the oldest click sits at slot `written % len(seen)`. Written from slot 0 with a count
    of n, the next click lands on the oldest of them, as in that worker's own ring.
    """
    if written > len(seen) > 0:
        start = written % len(seen)
        seen = seen[start:] + seen[:start]
    recent = seen[-TWO_RING_WIDTH:]
    return recent, len(recent)


def encode_marker(offset: int, origin: str) -> bytes:
    """The marker: the state before it in this partition reflects input up to `offset`."""
    packed: bytes = msgpack.packb({"v": FORMAT, "offset": int(offset), "origin": origin})
    return packed


@dataclass(frozen=True)
class PartitionState:
    """A state partition read to its end: the latest record per user, and the last marker."""

    users: UserRows
    marker: int | None
    records: int


def decode_partition(
    records: list[tuple[bytes | None, bytes | None]], width: int
) -> PartitionState:
    """The latest state per user and the last marker (a None value deletes a user)."""
    latest: dict[str, dict[str, Any]] = {}
    marker: int | None = None
    for key, value in records:
        if key is None:
            continue
        if key == MARKER_KEY:
            if value is not None:
                marker = int(msgpack.unpackb(value)["offset"])
            continue
        user = key.decode()
        if value is None:
            latest.pop(user, None)
            continue
        record = msgpack.unpackb(value)
        if len(record["w"]) == 4 * width:  # a row of another dimension is not restored
            latest[user] = record
    rows = list(latest.values())
    n = len(rows)

    def floats(name: str, cols: int) -> np.ndarray:
        flat = b"".join(r[name] for r in rows)
        return np.frombuffer(flat, dtype="<f4").reshape(n, cols).astype(np.float32)

    users = UserRows(
        ids=list(latest),
        weight=floats("w", width) if n else np.zeros((0, width), np.float32),
        grad_sq=floats("g", 2) if n else np.zeros((0, 2), np.float32),
        seen=[r["s"] for r in rows],
        seen_written=np.fromiter((r["sw"] for r in rows), np.int64, n),
        last_ts=np.fromiter((r["ts"] for r in rows), np.float64, n),
        last_seen=np.fromiter((r["ls"] for r in rows), np.float64, n),
    )
    return PartitionState(users, marker, len(records))


@dataclass(frozen=True)
class DeltaChunk:
    """One item-feed record: part of one origin's delta."""

    origin: str
    seq: int
    sent: float  # wall time it was sent
    since: float  # wall time of the oldest change it carries (staleness is measured from it)
    delta: ItemDelta


def encode_delta(chunk: DeltaChunk) -> bytes:
    """One item-feed record."""
    d = chunk.delta
    packed: bytes = msgpack.packb(
        {
            "v": FORMAT,
            "origin": chunk.origin,
            "seq": chunk.seq,
            "sent": chunk.sent,
            "since": chunk.since,
            "width": d.weight.shape[1],
            "ids": d.ids,
            "w": d.weight.astype("<f4").tobytes(),
            "g": d.grad_sq.astype("<f4").tobytes(),
            "cw": d.context.astype("<f4").tobytes(),
            "cg": d.context_grad_sq.astype("<f4").tobytes(),
            "cols": d.context.shape[1],
            "click_ids": d.click_ids,
            "click_mass": d.click_mass.astype("<f8").tobytes(),
            "clock": d.clock,
            "events": d.events,
        }
    )
    return packed


def decode_delta(value: bytes) -> DeltaChunk:
    """An item-feed record; `ValueError` for one this version cannot read."""
    raw = msgpack.unpackb(value)
    if not isinstance(raw, dict) or raw.get("v") != FORMAT:
        raise ValueError("not an item delta of format 1")
    n, width, cols = len(raw["ids"]), int(raw["width"]), int(raw["cols"])

    def floats(name: str, shape: tuple[int, int]) -> np.ndarray:
        return np.frombuffer(raw[name], dtype="<f4").reshape(shape).astype(np.float32)

    delta = ItemDelta(
        ids=list(raw["ids"]),
        weight=floats("w", (n, width)),
        grad_sq=floats("g", (n, 2)),
        context=floats("cw", (n, cols)),
        context_grad_sq=floats("cg", (n, 2 if cols else 0)),
        click_ids=list(raw["click_ids"]),
        click_mass=np.frombuffer(raw["click_mass"], dtype="<f8").astype(np.float64),
        clock=float(raw["clock"]),
        events=int(raw["events"]),
    )
    return DeltaChunk(raw["origin"], int(raw["seq"]), raw["sent"], raw["since"], delta)


def split_delta(delta: ItemDelta, max_items: int) -> list[ItemDelta]:
    """A delta cut into pieces of at most `max_items` rows (records stay well under 1 MB)."""
    if len(delta.ids) <= max_items:
        return [delta]
    pieces = []
    for start in range(0, len(delta.ids), max_items):
        end = start + max_items
        first = start == 0
        pieces.append(
            ItemDelta(
                ids=delta.ids[start:end],
                weight=delta.weight[start:end],
                grad_sq=delta.grad_sq[start:end],
                context=delta.context[start:end],
                context_grad_sq=delta.context_grad_sq[start:end],
                click_ids=delta.click_ids if first else [],
                click_mass=delta.click_mass if first else delta.click_mass[:0],
                clock=delta.clock,
                events=delta.events if first else 0,
            )
        )
    return pieces


@dataclass(frozen=True)
class TransitionChunk:
    """One item-feed record of transition pairs (ids, not rows), tagged like a delta chunk."""

    origin: str
    seq: int
    sent: float
    pairs: TransitionPairs


def encode_transitions(chunk: TransitionChunk) -> bytes:
    """One item-feed record of transition pairs."""
    p = chunk.pairs
    packed: bytes = msgpack.packb(
        {
            "v": FORMAT,
            "kind": "transitions",
            "origin": chunk.origin,
            "seq": chunk.seq,
            "sent": chunk.sent,
            "ids": p.ids,
            "b": p.before.astype("<i4").tobytes(),
            "a": p.after.astype("<i4").tobytes(),
            "tw": p.weight.astype("<f4").tobytes(),
        }
    )
    return packed


@dataclass(frozen=True)
class RankerChunk:
    """One item-feed record of a worker's ranker: its parameters and feature statistics."""

    origin: str
    seq: int
    sent: float
    state: dict[str, np.ndarray]  # float32 arrays by name (models.ranker's state_dict names)


def encode_ranker(chunk: RankerChunk) -> bytes:
    """One item-feed record of a ranker (a few KiB: it rides the feed whole)."""
    arrays = {
        name: {"shape": list(a.shape), "f": a.astype("<f4").tobytes()}
        for name, a in chunk.state.items()
    }
    packed: bytes = msgpack.packb(
        {
            "v": FORMAT,
            "kind": "ranker",
            "origin": chunk.origin,
            "seq": chunk.seq,
            "sent": chunk.sent,
            "arrays": arrays,
        }
    )
    return packed


def _decode_ranker(raw: dict[str, Any]) -> RankerChunk:
    if raw.get("v") != FORMAT:
        raise ValueError("not a ranker record of format 1")
    state = {}
    for name, entry in dict(raw["arrays"]).items():
        shape = tuple(int(n) for n in entry["shape"])
        array = np.frombuffer(entry["f"], dtype="<f4").astype(np.float32)
        if array.size != int(np.prod(shape)):
            raise ValueError(f"ranker record: {name} does not fill its shape")
        state[str(name)] = array.reshape(shape)
    return RankerChunk(raw["origin"], int(raw["seq"]), raw["sent"], state)


def decode_feed(value: bytes) -> DeltaChunk | TransitionChunk | RankerChunk:
    """An item-feed record of any kind; `ValueError` for one this version cannot read."""
    raw = msgpack.unpackb(value)
    if isinstance(raw, dict) and raw.get("kind") == "ranker":
        return _decode_ranker(raw)
    if not isinstance(raw, dict) or raw.get("kind") != "transitions":
        return decode_delta(value)
    if raw.get("v") != FORMAT:
        raise ValueError("not a transition record of format 1")
    ids = list(raw["ids"])
    before = np.frombuffer(raw["b"], dtype="<i4").astype(np.int32)
    after = np.frombuffer(raw["a"], dtype="<i4").astype(np.int32)
    weight = np.frombuffer(raw["tw"], dtype="<f4").astype(np.float32)
    if not len(before) == len(after) == len(weight):
        raise ValueError("transition record of uneven arrays")
    if len(before) and max(int(before.max()), int(after.max())) >= len(ids):
        raise ValueError("transition record indexing past its ids")
    if len(before) and min(int(before.min()), int(after.min())) < 0:
        raise ValueError("transition record with a negative index")
    return TransitionChunk(
        raw["origin"], int(raw["seq"]), raw["sent"], TransitionPairs(ids, before, after, weight)
    )
