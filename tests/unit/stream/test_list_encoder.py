"""The vectorised list encoder writes exactly what `encode_recommendation` writes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.payload import (
    ListEncoder,
    RankedLists,
    Recommendation,
    encode_recommendation,
    recommendations,
)

# Lengths crossing msgpack's fixstr (31), str8 (255) and str16 boundaries, in any script.
_IDS = st.one_of(
    st.text(max_size=40),
    st.text(min_size=25, max_size=300),
    st.sampled_from(["", "a" * 31, "a" * 32, "é" * 16, "b" * 255, "c" * 256, "d" * 65_536]),
)
_SCORES = st.floats(width=32, allow_nan=False) | st.sampled_from(
    [0.0, -0.0, 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38, float("-inf")]
)


def _reference(
    ids: list[str], rows: np.ndarray, scores: np.ndarray, event_ts: np.ndarray, ts: float, v: int
) -> list[bytes]:
    out = []
    for n in range(rows.shape[0]):
        keep = rows[n] >= 0
        rec = Recommendation(
            "", [ids[r] for r in rows[n][keep]], scores[n][keep].tolist(), float(event_ts[n])
        )
        out.append(encode_recommendation(rec, ts, v))
    return out


@st.composite
def _batches(draw: st.DrawFn) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    ids = draw(st.lists(_IDS, min_size=1, max_size=12))
    users = draw(st.integers(0, 6))
    k = draw(st.sampled_from([0, 1, 3, 15, 16, 17]))
    counts = draw(st.lists(st.integers(0, k), min_size=users, max_size=users))
    rows = np.full((users, k), -1, dtype=np.int64)
    for u, count in enumerate(counts):
        rows[u, :count] = draw(
            st.lists(st.integers(0, len(ids) - 1), min_size=count, max_size=count)
        )
    flat = draw(st.lists(_SCORES, min_size=users * k, max_size=users * k))
    scores = np.array(flat, dtype=np.float32).reshape(users, k)
    event_ts = np.array(
        draw(st.lists(st.floats(allow_nan=False), min_size=users, max_size=users)), np.float64
    )
    return ids, rows, scores, event_ts


@settings(max_examples=300, deadline=None)
@given(
    _batches(),
    st.floats(allow_nan=False) | st.integers(0, 2**40),
    st.integers(0, 2**63 - 1),
)
def test_matches_the_reference_encoder_byte_for_byte(
    batch: tuple[list[str], np.ndarray, np.ndarray, np.ndarray], ts: float, version: int
) -> None:
    """Any ids, scores (negative, huge, subnormal) and list lengths: the same bytes."""
    ids, rows, scores, event_ts = batch
    table = np.array(ids, dtype=object)
    got = ListEncoder().encode(table.__getitem__, rows, scores, event_ts, ts, version)
    assert got == _reference(ids, rows, scores, event_ts, ts, version)


def test_reused_rows_are_re_encoded() -> None:
    """A row handed to another id publishes the new id, not the cached bytes of the old one."""
    encoder = ListEncoder()
    table = np.array(["old", "x"], dtype=object)
    rows, scores, ts = np.array([[0, 1]]), np.ones((1, 2), np.float32), np.zeros(1)
    first = encoder.encode(table.__getitem__, rows, scores, ts, 1.0, 1)
    table[0] = "a much longer new id"
    second = encoder.encode(table.__getitem__, rows, scores, ts, 1.0, 1)
    assert first == _reference(["old", "x"], rows, scores, ts, 1.0, 1)
    assert second == _reference(list(table), rows, scores, ts, 1.0, 1)


def test_many_id_changes_keep_every_encoding() -> None:
    """Ids changing and growing over many batches: every list still encodes right."""
    encoder = ListEncoder()
    rng = np.random.default_rng(0)
    table = np.array([f"i{n}" for n in range(500)], dtype=object)
    for step in range(200):
        changed = rng.integers(0, 500, 50)
        table[changed] = [f"id-{step}-{n}-" + "z" * 40 for n in changed.tolist()]
        rows = rng.integers(-1, 500, (20, 10))
        scores = rng.normal(size=(20, 10)).astype(np.float32)
        ts = rng.normal(size=20)
        got = encoder.encode(table.__getitem__, rows, scores, ts, 5.0, step)
        assert got == _reference(list(table), rows, scores, ts, 5.0, step)


def test_encoded_lists_are_the_encoded_recommendations_per_user() -> None:
    """`encode_lists` pairs each user with the bytes of its `recommendations` entry."""
    ids = np.array(["x", "y", "z"], dtype=object)
    lists = RankedLists(
        ["a", "b"],
        np.array([[2, 0, -1], [-1, 1, 2]]),
        np.array([[0.5, 0.25, -np.inf], [-np.inf, 2.0, 1.0]], dtype=np.float32),
        np.array([7.0, 9.5]),
        lambda rows: ids[rows],
    )
    recs = recommendations(lists)
    assert [(r.user, r.items, r.event_ts) for r in recs] == [
        ("a", ["z", "x"], 7.0),
        ("b", ["y", "z"], 9.5),
    ]
    pairs = ListEncoder().encode_lists(lists, 12.0, 3)
    assert pairs == [(r.user, encode_recommendation(r, 12.0, 3)) for r in recs]
