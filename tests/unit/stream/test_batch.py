"""Unit tests for `stream.batch.decode_messages`, with a stand-in for Kafka messages."""

from __future__ import annotations

import json

import msgpack
import numpy as np
from fake_messages import FakeMessage
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.batch import _fast_msgpack, decode_messages
from stream.errors import BadEvent
from stream.events import MAX_WEIGHT, EventLimits, decode_event


def _event(**fields: object) -> bytes:
    packed: bytes = msgpack.packb({"user": "u", "item": "i", **fields})
    return packed


def test_next_offsets_cover_valid_and_rejected_per_partition() -> None:
    """Each partition's next offset is its highest offset + 1, rejected messages included."""
    messages = [
        FakeMessage(_event(), 10, 0),
        FakeMessage(b"\xc1", 11, 0),
        FakeMessage(_event(), 4, 1),
        FakeMessage(b"", 9, 1),
        FakeMessage(_event(), 3, 1),
        FakeMessage(b"\xc1", 7, 2),
        FakeMessage(_event(), 0, 0, "other"),
    ]
    batch = decode_messages(messages)
    assert batch.next_offsets == {
        ("clicks", 0): 12,
        ("clicks", 1): 10,
        ("clicks", 2): 8,
        ("other", 0): 1,
    }
    assert len(batch) == 4
    assert batch.messages == 7


def test_rejected_messages_carry_where_and_why() -> None:
    """A rejected message keeps its value, key, topic, partition, offset and reason."""
    bad = b'{"user": "u"}'
    batch = decode_messages([FakeMessage(_event(), 1, 3), FakeMessage(bad, 2, 3, _key=b"user-key")])
    assert len(batch) == 1
    [rejected] = batch.rejected
    assert rejected.value == bad
    assert rejected.key == b"user-key"
    assert (rejected.topic, rejected.partition, rejected.offset) == ("clicks", 3, 2)
    assert rejected.reason == "missing_field:item"


def test_missing_ts_falls_back_to_kafka_timestamp_in_seconds() -> None:
    """Without an event `ts` the message timestamp (ms) is used, in seconds."""
    batch = decode_messages(
        [
            FakeMessage(_event(), 0, _ts_ms=1_700_000_000_500),
            FakeMessage(_event(ts=42.0), 1, _ts_ms=1_700_000_001_000),
            FakeMessage(_event(), 2, _ts_ms=-1),
        ]
    )
    assert batch.event_ts == [1_700_000_000.5, 42.0, 0.0]
    assert batch.produced_ts == [1_700_000_000.5, 1_700_000_001.0, 0.0]


def test_type_weights_multiply_the_event_weight() -> None:
    """Per-type weights scale each event's own weight; unknown types keep theirs."""
    messages = [
        FakeMessage(_event(type="buy", weight=2.0), 0),
        FakeMessage(_event(type="buy"), 1),
        FakeMessage(_event(), 2),
        FakeMessage(_event(type="view", weight=0.5), 3),
    ]
    batch = decode_messages(messages, {"buy": 5.0, "click": 0.25})
    assert batch.weights == [10.0, 5.0, 0.25, 0.5]
    assert decode_messages(messages).weights == [2.0, 1.0, 1.0, 0.5]


def test_columns_and_arrays_line_up() -> None:
    """Users, items, times and weights are parallel columns; `arrays` types them."""
    messages = [
        FakeMessage(json.dumps({"user": 1, "item": "a", "ts": 5}).encode(), 0),
        FakeMessage(b"\xc1", 1),
        FakeMessage(_event(user="v", item=2, ts=6.5, weight=3), 2),
    ]
    batch = decode_messages(messages)
    assert batch.users == ["1", "v"]
    assert batch.items == ["a", "2"]
    ts, weights = batch.arrays()
    assert ts.dtype == np.float64
    assert weights.dtype == np.float32
    assert ts.tolist() == [5.0, 6.5]
    assert weights.tolist() == [1.0, 3.0]


def test_empty_input_gives_an_empty_batch() -> None:
    """No messages, no events, nothing to commit."""
    batch = decode_messages([])
    assert len(batch) == 0
    assert batch.messages == 0
    assert batch.next_offsets == {}


def test_accepted_weights_stay_finite_in_the_weight_column() -> None:
    """The largest accepted weight is finite in float32; a larger one is dead-lettered."""
    batch = decode_messages(
        [FakeMessage(_event(weight=MAX_WEIGHT), 0), FakeMessage(_event(weight=1e300), 1)],
        {"click": MAX_WEIGHT},
    )
    assert [r.reason for r in batch.rejected] == ["bad_value:weight"]
    _, weights = batch.arrays()
    assert np.isfinite(weights).all()


_ids = st.one_of(
    st.text(min_size=0, max_size=40), st.integers(min_value=-(2**63), max_value=2**64 - 1)
)
_int64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what msgpack can carry
_values = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=True), _int64, st.text(max_size=5)
)


@given(
    user=_ids,
    item=_ids,
    ts=st.one_of(st.just("absent"), _values),
    extra=st.dictionaries(st.sampled_from(["type", "weight", "x"]), _values, max_size=2),
)
@settings(max_examples=300, deadline=None)
def test_fast_path_agrees_with_the_full_decoder(
    user: object, item: object, ts: object, extra: dict[str, object]
) -> None:
    """The inline msgpack fast path accepts a subset of what decode_event accepts, identically."""
    fields: dict[str, object] = {"user": user, "item": item, **extra}
    if ts != "absent":
        fields["ts"] = ts
    value = msgpack.packb(fields)
    fast = _fast_msgpack(value, 123.0)
    try:
        full = decode_event(value, default_ts=123.0)
    except BadEvent:
        assert fast is None
        return
    if fast is not None:
        assert fast == (full.user, full.item, full.ts)
        assert full.type == "click"
        assert full.weight == 1.0


def test_limits_dead_letter_hostile_events_and_clamp_type_weights() -> None:
    """Too heavy or too far ahead: dead-lettered on both paths; weight times type weight clamped."""
    now = 1_700_000_000.0
    limits = EventLimits(max_weight=10.0, max_ts=now + 300)
    messages = [
        FakeMessage(msgpack.packb({"user": "u", "item": "i", "ts": 1e300}), 0),  # fast path
        FakeMessage(_event(weight=1e6), 1),
        FakeMessage(msgpack.packb({"user": "u", "item": "i", "ts": now}), 2),
        FakeMessage(_event(weight=4.0, type="buy"), 3),
        FakeMessage(msgpack.packb({"user": "u", "item": "i"}), 4, _ts_ms=int((now + 400) * 1000)),
    ]
    batch = decode_messages(messages, {"buy": 5.0}, limits)
    assert [(r.offset, r.reason) for r in batch.rejected] == [
        (0, "bad_value:ts_future"),
        (1, "bad_value:weight"),
        (4, "bad_value:ts_future"),
    ]
    assert batch.weights == [1.0, 10.0]
    assert batch.next_offsets == {("clicks", 0): 5}


@given(ts=st.floats(min_value=0, allow_nan=False), max_ts=st.floats(min_value=0, max_value=1e12))
@settings(max_examples=200, deadline=None)
def test_fast_path_agrees_with_the_full_decoder_under_a_time_limit(
    ts: float, max_ts: float
) -> None:
    """Under a newest allowed time, the fast path accepts a time exactly when decode_event does."""
    value = msgpack.packb({"user": "u", "item": "i", "ts": ts})
    fast = _fast_msgpack(value, 0.0, max_ts)
    try:
        decode_event(value, 0.0, EventLimits(max_ts=max_ts))
    except BadEvent:
        assert fast is None
    else:
        assert fast == ("u", "i", ts)
