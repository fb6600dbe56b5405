"""The list payload contract: what downstream apps read from Redis (msgpack only, no client)."""

from __future__ import annotations

from dataclasses import dataclass

import msgpack


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One user's fresh list, as published under `{prefix}{user}`."""

    user: str
    items: list[str]
    scores: list[float]
    event_ts: float


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
