"""Unit tests for the Redis list payload: `encode_recommendation` and its decoder."""

from __future__ import annotations

import msgpack

from stream.payload import Recommendation, decode_recommendation, encode_recommendation


def test_round_trip_has_exactly_the_contract_keys() -> None:
    """The payload decodes to items, scores, ts, event_ts and version with their types."""
    rec = Recommendation(
        user="u1", items=["i3", "i1", "日本"], scores=[2.5, 1.25, -0.5], event_ts=1_700_000_000.5
    )
    raw = encode_recommendation(rec, published_ts=1_700_000_001.25, version=7)
    assert isinstance(raw, bytes)
    value = decode_recommendation(raw)
    assert set(value) == {"items", "scores", "ts", "event_ts", "version"}
    assert value["items"] == ["i3", "i1", "日本"]
    assert value["scores"] == [2.5, 1.25, -0.5]
    assert value["ts"] == 1_700_000_001.25
    assert value["event_ts"] == 1_700_000_000.5
    assert value["version"] == 7
    assert isinstance(value["items"], list)
    assert all(isinstance(item, str) for item in value["items"])
    assert all(isinstance(score, float) for score in value["scores"])
    assert isinstance(value["ts"], float)
    assert isinstance(value["event_ts"], float)
    assert type(value["version"]) is int


def test_empty_list_round_trips() -> None:
    """A user with no recommendations gets empty lists, not missing keys."""
    rec = Recommendation(user="u", items=[], scores=[], event_ts=0.0)
    value = decode_recommendation(encode_recommendation(rec, published_ts=1.0, version=0))
    assert value == {"items": [], "scores": [], "ts": 1.0, "event_ts": 0.0, "version": 0}


def test_payload_is_a_plain_msgpack_map() -> None:
    """Downstream readers need only msgpack: the payload is a map with str keys."""
    rec = Recommendation(user="u", items=["a"], scores=[1.0], event_ts=2.0)
    raw = encode_recommendation(rec, published_ts=3.0, version=1)
    value = msgpack.unpackb(raw, raw=False)
    assert isinstance(value, dict)
    assert value["items"] == ["a"]
