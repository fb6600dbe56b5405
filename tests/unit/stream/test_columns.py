"""The columnar run decoder (`stream.columns`) against the per-message reference decoder."""

from __future__ import annotations

import json
import math

import msgpack
from fake_messages import FakeMessage
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.batch import RUN, decode_messages
from stream.columns import common_columns
from stream.errors import BadEvent
from stream.events import MAX_EVENT_BYTES, EventLimits, decode_event

_int64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what msgpack can carry
_ids = st.one_of(
    st.text(max_size=3),
    st.text(min_size=30, max_size=40),
    st.text(alphabet="é€𝄞", min_size=30, max_size=130),  # many bytes per character
    _int64,
    st.booleans(),
    st.none(),
    st.floats(),
    st.binary(max_size=4),
    st.lists(_int64, max_size=2),
)
_times = st.one_of(
    st.floats(),  # NaN and both infinities included
    st.floats(min_value=0, max_value=2e9),
    _int64,
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.sampled_from([0.0, -0.0, 1e300, math.inf, math.nan, 2**64 - 1, -1]),
)
_ABSENT = object()
_event = st.fixed_dictionaries(
    {"user": _ids, "item": _ids},
    optional={
        "ts": _times,
        "type": st.sampled_from(["click", "buy", ""]),
        "weight": st.one_of(st.floats(), _int64),
        "x": st.none(),
        "nested": st.dictionaries(st.text(max_size=2), _int64, max_size=2),
    },
)
_common = st.fixed_dictionaries(
    {
        "user": st.one_of(st.text(min_size=1, max_size=8), _int64),
        "item": st.text(min_size=1, max_size=32),
    },
    optional={"ts": st.floats(min_value=0, max_value=2e9)},
)


def _json_bytes(event: dict[str, object]) -> bytes:
    return json.dumps(event, default=repr).encode()


_value = st.one_of(
    _common.map(msgpack.packb),
    _event.map(msgpack.packb),
    _event.map(_json_bytes),
    st.binary(max_size=24),
    st.just(b""),
    st.just(b"\x82\xa4user\xa1u\xa4item\xa1i" + b"\x00"),  # trailing data
    st.just(b"\x83\xa4user\xa1u\xa4item\xa1i"),  # cut short
    st.just(msgpack.packb({"user": "u", "item": "i", "ts": 1.0}) * 2),  # two events in one
    st.builds(
        lambda: msgpack.packb({"user": "u", "item": "i", "ts": 1.0, "x": "x" * MAX_EVENT_BYTES})
    ),
    st.just(msgpack.packb({b"user": "u", "item": "i"})),  # a bytes key
    st.just(msgpack.packb({1: "u", "user": "u", "item": "i"})),  # an int key
    st.just(msgpack.packb({"user": "u", "item": "i", "ts": msgpack.Timestamp(5)})),
    st.none(),
)


def _reference(
    values: list[bytes | None], produced: list[float], max_ts: float
) -> list[tuple[str, str, float]] | None:
    """Each value through `decode_event`, None if any is bad or not a plain click."""
    out = []
    for value, at in zip(values, produced, strict=True):
        try:
            event = decode_event(value, default_ts=at, limits=EventLimits(max_ts=max_ts))
        except BadEvent:
            return None
        if event.type != "click" or event.weight != 1.0:
            return None
        out.append((event.user, event.item, event.ts))
    return out


@given(
    values=st.lists(_value, max_size=6),
    produced=st.lists(st.sampled_from([0.0, 1.5, 1.7e9, 3e9]), min_size=6, max_size=6),
    max_ts=st.sampled_from([math.inf, 2e9, 0.0]),
)
@settings(max_examples=600, deadline=None)
def test_a_columnar_run_agrees_with_the_reference_decoder(
    values: list[bytes | None], produced: list[float], max_ts: float
) -> None:
    """On any run the columnar decoder gives None or exactly what decode_event gives."""
    produced = produced[: len(values)]
    columns = common_columns(values, produced, max_ts)
    if columns is None:
        return
    reference = _reference(values, produced, max_ts)
    assert reference is not None, values
    users, items, times = columns
    assert list(zip(users, items, times, strict=True)) == reference
    assert all(type(t) is float for t in times)


@given(events=st.lists(_common, min_size=1, max_size=20), at=st.floats(0, 2e9))
@settings(max_examples=200, deadline=None)
def test_a_run_of_common_events_is_taken_whole(events: list[dict[str, object]], at: float) -> None:
    """Short ids with or without a time, mixed in one run, are decoded without the fallback."""
    values: list[bytes | None] = [msgpack.packb(event) for event in events]
    columns = common_columns(values, [at] * len(values), math.inf)
    assert columns is not None
    assert list(zip(*columns, strict=True)) == _reference(values, [at] * len(values), math.inf)


@given(
    values=st.lists(_value, max_size=40),
    spread=st.integers(min_value=1, max_value=RUN),
    max_ts=st.sampled_from([math.inf, 2e9]),
)
@settings(max_examples=150, deadline=None)
def test_a_batch_decodes_as_one_message_at_a_time_would(
    values: list[bytes | None], spread: int, max_ts: float
) -> None:
    """Columns, rejects with their reasons, and next offsets match a per-message decode."""
    # Each value repeated `spread` times: runs that are whole, and runs cut by a bad message.
    messages = [
        FakeMessage(value, n, n % 3, _ts_ms=1_700_000_000_000 + n)
        for n, value in enumerate(v for v in values for _ in range(max(1, spread // 8)))
    ]
    limits = EventLimits(max_weight=10.0, max_ts=max_ts)
    batch = decode_messages(messages, {"buy": 2.0}, limits)
    users, items, times, weights, rejected = [], [], [], [], []
    for message in messages:
        produced = message.timestamp()[1] / 1000.0
        try:
            event = decode_event(message.value(), default_ts=produced, limits=limits)
        except BadEvent as bad:
            rejected.append((message.offset(), bad.reason))
            continue
        users.append(event.user)
        items.append(event.item)
        times.append(event.ts)
        weights.append(min(event.weight * (2.0 if event.type == "buy" else 1.0), 10.0))
    assert (batch.users, batch.items, batch.event_ts) == (users, items, times)
    assert batch.weights == weights
    assert [(r.offset, r.reason) for r in batch.rejected] == rejected
    expected: dict[tuple[str, int], int] = {}
    for message in messages:
        key = (message.topic(), message.partition())
        expected[key] = max(expected.get(key, 0), message.offset() + 1)
    assert batch.next_offsets == expected
    assert len(batch.partitions) == len(batch.produced_ts) == len(batch)


def test_one_malformed_message_sends_only_its_run_one_by_one() -> None:
    """A bad message in a long batch is dead-lettered; the runs around it stay columnar."""
    good = msgpack.packb({"user": 7, "item": "i", "ts": 5.0})
    messages = [FakeMessage(good, n) for n in range(3 * RUN)]
    messages[RUN + 3] = FakeMessage(b"\xc1", RUN + 3)
    messages[2 * RUN + 1] = FakeMessage(b'{"user": "u", "item": "i", "ts": NaN}', 2 * RUN + 1)
    batch = decode_messages(messages)
    assert [(r.offset, r.reason) for r in batch.rejected] == [
        (RUN + 3, "invalid_msgpack"),
        (2 * RUN + 1, "bad_value:ts"),
    ]
    assert len(batch) == 3 * RUN - 2
    assert set(batch.users) == {"7"}
    assert batch.next_offsets == {("clicks", 0): 3 * RUN}
