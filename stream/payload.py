"""The list payload contract: what downstream apps read from Redis (msgpack only, no client)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgpack
import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One user's fresh list, as published under `{prefix}{user}`."""

    user: str
    items: list[str]
    scores: list[float]
    event_ts: float


@dataclass(frozen=True)
class RankedLists:
    """A batch's lists as the model left them: rows and scores, and how to name them.

    The wire side (`ListEncoder.encode_lists`, `recommendations`) turns this into
    payloads; the model side never builds a byte of the contract.
    """

    users: list[str]  # one id per list
    item_rows: npt.NDArray[np.int64]  # [users, k] item rows, -1 past a short list
    scores: npt.NDArray[np.floating]  # [users, k]
    event_ts: npt.NDArray[np.floating]  # [users] each user's newest event time folded in
    ids_of: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.object_]]  # item rows -> ids


def recommendations(lists: RankedLists) -> list[Recommendation]:
    """The lists one object each (tools and tests; the loop encodes them in bulk)."""
    valid = lists.item_rows >= 0
    item_ids = lists.ids_of(np.where(valid, lists.item_rows, 0))
    stamps = lists.event_ts.tolist()
    return [
        Recommendation(
            user, item_ids[n][valid[n]].tolist(), lists.scores[n][valid[n]].tolist(), stamps[n]
        )
        for n, user in enumerate(lists.users)
    ]


# One packer for every list: a fresh one per call costs more than packing a short list.
# Times stay float64 (seconds since the epoch need it); scores are float32 on the device,
# so packing them as float32 loses nothing and saves 4 bytes each.
_pack_map = msgpack.Packer(autoreset=True).pack
_pack_scores = msgpack.Packer(autoreset=True, use_single_float=True).pack
_MAP_HEADER = b"\x85"  # fixmap of 5 entries
_KEYS = [msgpack.packb(k) for k in ("items", "scores", "ts", "event_ts", "version")]


def encode_recommendation(rec: Recommendation, published_ts: float, version: int) -> bytes:
    """The msgpack map downstream apps read (see README, "Redis contract")."""
    return b"".join(
        (
            _MAP_HEADER,
            _KEYS[0],
            _pack_map(rec.items),
            _KEYS[1],
            _pack_scores(rec.scores),
            _KEYS[2],
            _pack_map(published_ts),
            _KEYS[3],
            _pack_map(rec.event_ts),
            _KEYS[4],
            _pack_map(version),
        )
    )


def decode_recommendation(raw: bytes) -> dict[str, object]:
    """Read a published list back (tests, the demo report, downstream examples)."""
    value: dict[str, object] = msgpack.unpackb(raw, raw=False)
    return value


def _array_header(lengths: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.uint8], np.ndarray]:
    """The msgpack array headers of each length: `[n, 5]` bytes (left-aligned) and their sizes."""
    n = lengths.shape[0]
    out = np.zeros((n, 5), dtype=np.uint8)
    size = np.where(lengths < 16, 1, np.where(lengths < 1 << 16, 3, 5))  # noqa: PLR2004
    fix = size == 1
    out[fix, 0] = 0x90 | lengths[fix]
    a16 = size == 3  # noqa: PLR2004
    out[a16, 0] = 0xDC
    out[a16, 1:3] = lengths[a16].astype(">u2").view(np.uint8).reshape(-1, 2)
    a32 = size == 5  # noqa: PLR2004
    out[a32, 0] = 0xDD
    out[a32, 1:5] = lengths[a32].astype(">u4").view(np.uint8).reshape(-1, 4)
    return out, size


def _rows_of(table: np.ndarray, rows: npt.NDArray[np.int64]) -> np.ndarray:
    """`table[rows]` for a 2-D table, gathering each row as one opaque element (far faster)."""
    width = table.shape[1] * table.itemsize
    return table.view(f"V{width}").reshape(-1)[rows].view(table.dtype)


class ListEncoder:
    """Encodes a batch of lists into their contract payloads with numpy, not a loop per user.

    Byte for byte what `encode_recommendation` writes. Each item row's msgpack
    string is encoded once, into a `[rows, width]` table (width: the longest
    encoding), and re-encoded only when the id at that row changes (rows are
    freed and reused); scores are packed as one big-endian float32 array; the
    parts every list shares (keys, publish time, version) are encoded once per
    batch. The batch is laid out as one `[users, columns]` byte matrix with a
    mask of the bytes each user's payload holds, so every payload comes out of
    one boolean compaction; the only per-user Python left is slicing the result.
    Padding costs `width` bytes per listed item: fine for ids of similar length
    (the contract caps them at 128 bytes).
    """

    def __init__(self) -> None:
        """Start with no encodings."""
        self._codes = np.zeros((1024, 1), dtype=np.uint8)  # per row: its encoded id, padded
        self._held = np.zeros((1024, 1), dtype=bool)  # per row: which of its bytes are real
        self._size = np.zeros(1024, dtype=np.int64)  # per row: its length (0: not encoded)
        self._ids = np.empty(1024, dtype=object)  # per row: the id that was encoded

    def encode_lists(
        self, lists: RankedLists, published_ts: float, version: int
    ) -> list[tuple[str, bytes]]:
        """`(user id, payload)` per list of the batch."""
        encoded = self.encode(
            lists.ids_of, lists.item_rows, lists.scores, lists.event_ts, published_ts, version
        )
        return list(zip(lists.users, encoded, strict=True))

    def encode(
        self,
        ids_of: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.object_]],
        rows: npt.NDArray[np.integer],
        scores: npt.NDArray[np.floating],
        event_ts: npt.NDArray[np.floating],
        published_ts: float,
        version: int,
    ) -> list[bytes]:
        """Payloads of the lists `rows[u]` (item rows, `-1` left out) with `scores[u]`.

        `ids_of` maps item rows to their current ids (`IdMap.ids_of`).
        """
        users, k = rows.shape
        if users == 0:
            return []
        valid = rows >= 0
        if not (valid[:, :-1] >= valid[:, 1:]).all():  # valid entries first, in order
            order = np.argsort(~valid, axis=1, kind="stable")
            rows = np.take_along_axis(rows, order, 1)
            scores = np.take_along_axis(scores, order, 1)
            valid = np.take_along_axis(valid, order, 1)
        counts = valid.sum(1).astype(np.int64)
        safe = np.where(valid, rows, 0).astype(np.int64)
        self._refresh(ids_of, safe[valid])
        header, header_size = _array_header(counts)
        width = self._codes.shape[1]
        # Whole rows gathered as opaque `width`-byte elements: one copy per listed item.
        items = _rows_of(self._codes, safe).reshape(users, k * width)
        items_held = _rows_of(self._held, safe).reshape(users, k, width) & valid[:, :, None]
        sizes = np.where(valid, self._size[safe], 0).sum(1)
        packed = np.empty((users, k, 5), dtype=np.uint8)
        packed[:, :, 0] = 0xCA
        packed[:, :, 1:] = scores.astype(">f4").view(np.uint8).reshape(users, k, 4)
        tail = b"".join((_KEYS[2], _pack_map(published_ts), _KEYS[3], b"\xcb"))
        version_part = _KEYS[4] + _pack_map(version)

        def fixed(raw: bytes) -> npt.NDArray[np.uint8]:
            return np.broadcast_to(np.frombuffer(raw, dtype=np.uint8), (users, len(raw)))

        def cover(n: int) -> npt.NDArray[np.bool_]:
            return np.ones((users, n), dtype=bool)

        head = fixed(_MAP_HEADER + _KEYS[0])
        mid = fixed(_KEYS[1])
        event = event_ts.astype(">f8").view(np.uint8).reshape(users, 8)
        within = np.arange(5) < header_size[:, None]
        parts = (
            (head, cover(head.shape[1])),
            (header, within),
            (items, items_held.reshape(users, k * width)),
            (mid, cover(mid.shape[1])),
            (header, within),
            (packed.reshape(users, 5 * k), np.repeat(valid, 5, axis=1)),
            (fixed(tail), cover(len(tail))),
            (event, cover(8)),
            (fixed(version_part), cover(len(version_part))),
        )
        data = np.concatenate([part for part, _ in parts], axis=1)
        held = np.concatenate([mask for _, mask in parts], axis=1)
        blob = data[held].tobytes()
        fixed_size = head.shape[1] + mid.shape[1] + len(tail) + 8 + len(version_part)
        bounds = np.cumsum(fixed_size + 2 * header_size + sizes + 5 * counts).tolist()
        return [blob[a:b] for a, b in zip([0, *bounds[:-1]], bounds, strict=True)]

    def _refresh(
        self,
        ids_of: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.object_]],
        rows: npt.NDArray[np.int64],
    ) -> None:
        """Encode the rows among `rows` never encoded, or whose id changed since."""
        if rows.size == 0:
            return
        extent = int(rows.max()) + 1
        if extent > self._size.size:
            self._grow(max(extent, 2 * self._size.size), self._codes.shape[1])
        mark = np.zeros(extent, dtype=bool)
        mark[rows] = True
        used = np.flatnonzero(mark)
        current = ids_of(used)
        changed = (self._size[used] == 0) | (self._ids[used] != current)
        if not changed.any():
            return
        stale, fresh = used[changed], current[changed]
        encoded = [msgpack.packb(key) for key in fresh.tolist()]
        sizes = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        widest = int(sizes.max())
        if widest > self._codes.shape[1]:
            self._grow(self._size.size, widest)
        width = self._codes.shape[1]
        self._codes[stale] = 0
        self._codes[stale] = np.frombuffer(
            b"".join(e.ljust(width, b"\0") for e in encoded), np.uint8
        ).reshape(-1, width)
        self._size[stale] = sizes
        self._held[stale] = np.arange(width) < sizes[:, None]
        self._ids[stale] = fresh

    def _grow(self, rows: int, width: int) -> None:
        """Room for `rows` rows of encodings up to `width` bytes, keeping what is there."""
        codes = np.zeros((rows, width), dtype=np.uint8)
        old_rows, old_width = self._codes.shape
        codes[:old_rows, :old_width] = self._codes
        held = np.zeros((rows, width), dtype=bool)
        held[:old_rows, :old_width] = self._held
        size = np.zeros(rows, dtype=np.int64)
        size[:old_rows] = self._size
        ids = np.empty(rows, dtype=object)
        ids[:old_rows] = self._ids
        self._codes, self._held, self._size, self._ids = codes, held, size, ids
