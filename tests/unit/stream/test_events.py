"""Unit tests for the click event contract: `decode_event` and `encode_event`."""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.errors import BadEvent
from stream.events import (
    MAX_EVENT_BYTES,
    MAX_ID_BYTES,
    ClickEvent,
    EventLimits,
    decode_event,
    encode_event,
)

DEFAULT_TS = 1_700_000_000.0


def _json(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def _pack(event: object) -> bytes:
    packed: bytes = msgpack.packb(event)
    return packed


def _reason(value: bytes | None) -> str:
    with pytest.raises(BadEvent) as caught:
        decode_event(value, default_ts=DEFAULT_TS)
    assert str(caught.value) == caught.value.reason
    return caught.value.reason


def _assert_valid(event: ClickEvent) -> None:
    """The invariants every decoded event promises."""
    for ident in (event.user, event.item):
        assert isinstance(ident, str)
        assert 1 <= len(ident.encode("utf-8")) <= MAX_ID_BYTES
    assert isinstance(event.ts, float)
    assert math.isfinite(event.ts)
    assert event.ts >= 0
    assert isinstance(event.weight, float)
    assert math.isfinite(event.weight)
    assert event.weight > 0
    assert isinstance(event.type, str)
    assert event.type


BASE: dict[str, Any] = {"user": "u1", "item": "i1"}

BAD_CASES: list[tuple[str, bytes | None, str]] = [
    ("empty bytes", b"", "empty_message"),
    ("none", None, "empty_message"),
    ("too large", b"{" + b" " * MAX_EVENT_BYTES + b"}", "too_large"),
    ("bad msgpack", b"\xc1", "invalid_msgpack"),
    ("truncated msgpack", _pack(BASE)[:-3], "invalid_msgpack"),
    ("msgpack trailing bytes", _pack(BASE) + b"\x01", "invalid_msgpack"),
    ("msgpack bad utf-8", b"\x81\xa4user\xa2\xff\xfe", "invalid_msgpack"),
    ("truncated json", b'{"user": "u1", "item": "i', "invalid_json"),
    ("json bad utf-8", b'{"user": "\xff"}', "invalid_json"),
    ("json array", b'[{"user": "u1", "item": "i1"}]', "invalid_msgpack"),
    ("msgpack array", _pack(["u1", "i1"]), "not_a_map"),
    ("msgpack scalar", _pack(7), "not_a_map"),
    ("missing user", _json({"item": "i1"}), "missing_field:user"),
    ("missing item", _json({"user": "u1"}), "missing_field:item"),
    ("user null", _json({"user": None, "item": "i1"}), "bad_type:user"),
    ("user bool", _json({"user": True, "item": "i1"}), "bad_type:user"),
    ("user float", _json({"user": 1.5, "item": "i1"}), "bad_type:user"),
    ("user list", _json({"user": ["u"], "item": "i1"}), "bad_type:user"),
    ("user bytes", _pack({"user": b"u1", "item": "i1"}), "bad_type:user"),
    ("item bool", _pack({"user": "u1", "item": False}), "bad_type:item"),
    ("user 129 bytes", _json({"user": "u" * 129, "item": "i1"}), "bad_length:user"),
    ("user multibyte", _pack({"user": "é" * 65, "item": "i1"}), "bad_length:user"),
    ("user empty", _json({"user": "", "item": "i1"}), "bad_length:user"),
    ("item too long", _json({"user": "u", "item": "i" * 129}), "bad_length:item"),
    ("ts string", _json({**BASE, "ts": "1700000000"}), "bad_type:ts"),
    ("ts null", _json({**BASE, "ts": None}), "bad_type:ts"),
    ("ts json NaN", b'{"user": "u1", "item": "i1", "ts": NaN}', "bad_value:ts"),
    ("ts json Infinity", b'{"user": "u1", "item": "i1", "ts": Infinity}', "bad_value:ts"),
    ("ts json -Infinity", b'{"user": "u1", "item": "i1", "ts": -Infinity}', "bad_value:ts"),
    ("ts msgpack nan", _pack({**BASE, "ts": float("nan")}), "bad_value:ts"),
    ("ts msgpack inf", _pack({**BASE, "ts": float("inf")}), "bad_value:ts"),
    (
        "ts huge json int",
        b'{"user": "u1", "item": "i1", "ts": 1' + b"0" * 400 + b"}",
        "bad_value:ts",
    ),
    ("ts negative", _json({**BASE, "ts": -1.0}), "bad_value:ts"),
    ("weight zero", _json({**BASE, "weight": 0}), "bad_value:weight"),
    ("weight negative", _json({**BASE, "weight": -2.5}), "bad_value:weight"),
    ("weight NaN", b'{"user": "u1", "item": "i1", "weight": NaN}', "bad_value:weight"),
    ("weight msgpack nan", _pack({**BASE, "weight": float("nan")}), "bad_value:weight"),
    ("weight bool", _json({**BASE, "weight": True}), "bad_type:weight"),
    ("weight string", _json({**BASE, "weight": "2"}), "bad_type:weight"),
    ("type int", _json({**BASE, "type": 3}), "bad_type:type"),
    ("type null", _json({**BASE, "type": None}), "bad_type:type"),
    ("type empty", _json({**BASE, "type": ""}), "bad_type:type"),
    ("type too long", _json({**BASE, "type": "t" * 65}), "bad_type:type"),
    ("lone surrogate user", b'{"user": "\\ud800", "item": "i1"}', "bad_encoding:user"),
    ("lone surrogate item", b'{"user": "u1", "item": "a\\udfff"}', "bad_encoding:item"),
]


@pytest.mark.parametrize(
    ("value", "reason"), [case[1:] for case in BAD_CASES], ids=[case[0] for case in BAD_CASES]
)
def test_bad_input_gives_bad_event_with_reason(value: bytes | None, reason: str) -> None:
    """Each way of breaking the contract raises `BadEvent` with its own reason."""
    assert _reason(value) == reason


def test_int_ids_are_normalised_to_str() -> None:
    """Integer user and item ids decode as their decimal strings."""
    event = decode_event(_pack({"user": 7, "item": 2**63}), default_ts=DEFAULT_TS)
    assert event == ClickEvent("7", str(2**63), DEFAULT_TS)
    assert decode_event(_json({"user": -3, "item": 0}), default_ts=DEFAULT_TS).user == "-3"


def test_missing_ts_falls_back_to_default() -> None:
    """An event without `ts` takes `default_ts`, as a float."""
    event = decode_event(_json(BASE), default_ts=12.0)
    assert event.ts == 12.0
    assert isinstance(event.ts, float)
    assert event.type == "click"
    assert event.weight == 1.0


def test_ids_at_the_byte_limit_are_accepted() -> None:
    """Ids of exactly 128 UTF-8 bytes, multibyte or not, are valid."""
    event = decode_event(_pack({"user": "é" * 64, "item": "i" * 128}), default_ts=DEFAULT_TS)
    assert event.user == "é" * 64
    assert event.item == "i" * 128


def test_message_at_the_size_limit_is_accepted() -> None:
    """A message of exactly `MAX_EVENT_BYTES` bytes is decoded."""
    body = _json(BASE)
    value = body[:-1] + b" " * (MAX_EVENT_BYTES - len(body)) + b"}"
    assert len(value) == MAX_EVENT_BYTES
    assert decode_event(value, default_ts=DEFAULT_TS).user == "u1"


def test_json_and_msgpack_decode_equal() -> None:
    """The same map sent as JSON or as msgpack decodes to the same event."""
    event = {"user": "u9", "item": 42, "ts": 1_700_000_123.5, "type": "buy", "weight": 3}
    from_json = decode_event(_json(event), default_ts=DEFAULT_TS)
    from_msgpack = decode_event(_pack(event), default_ts=DEFAULT_TS)
    assert from_json == from_msgpack == ClickEvent("u9", "42", 1_700_000_123.5, "buy", 3.0)
    assert isinstance(from_json.weight, float)


def test_extra_fields_are_ignored() -> None:
    """Unknown fields, nested or not, do not affect decoding."""
    value = _json({**BASE, "ts": 5, "session": {"id": [1, 2]}, "x": None})
    assert decode_event(value, default_ts=DEFAULT_TS) == ClickEvent("u1", "i1", 5.0)


@pytest.mark.parametrize(
    "event",
    [
        ClickEvent("u", "i", 0.0),
        ClickEvent("user-1", "item-1", 1_700_000_000.25, "buy", 5.0),
        ClickEvent("é" * 64, "日本", 3.0, "view", 0.5),
    ],
)
def test_encode_decode_round_trip(event: ClickEvent) -> None:
    """`decode_event(encode_event(e))` gives back `e`."""
    encoded = encode_event(event)
    assert decode_event(encoded, default_ts=-1.0) == event


def _decode_or_reject(value: bytes) -> None:
    """Decode `value`: a `BadEvent` must carry a reason, anything else fails the test."""
    reason = None
    event = None
    try:
        event = decode_event(value, default_ts=DEFAULT_TS)
    except BadEvent as bad:
        reason = bad.reason
    if event is None:
        assert reason
    else:
        _assert_valid(event)


@settings(max_examples=200, deadline=None)
@given(value=st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_bad_event(value: bytes) -> None:
    """Any bytes decode to a valid event or raise `BadEvent`, never anything else."""
    _decode_or_reject(value)


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=140)
    | st.binary(max_size=10)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=10,
)
_KEYS = st.sampled_from(["user", "item", "ts", "weight", "type"]) | st.text(max_size=6)


@settings(max_examples=200, deadline=None)
@given(event=st.dictionaries(_KEYS, _VALUES, max_size=7))
def test_arbitrary_msgpack_maps_only_raise_bad_event(event: dict[str, Any]) -> None:
    """Any msgpack-packed map of JSON-like values decodes validly or raises `BadEvent`."""
    _decode_or_reject(_pack(event))


@settings(max_examples=200, deadline=None)
@given(
    event=st.dictionaries(
        _KEYS,
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=140),
            lambda children: (
                st.lists(children, max_size=3)
                | st.dictionaries(st.text(max_size=4), children, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=7,
    )
)
def test_arbitrary_json_maps_only_raise_bad_event(event: dict[str, Any]) -> None:
    """Any JSON object, NaN and huge numbers included, decodes validly or raises `BadEvent`."""
    _decode_or_reject(json.dumps(event).encode())


@settings(max_examples=200, deadline=None)
@given(tail=st.text(max_size=120))
def test_arbitrary_text_starting_with_a_brace_only_raises_bad_event(tail: str) -> None:
    """Any text that starts with `{` decodes validly or raises `BadEvent`."""
    _decode_or_reject(("{" + tail).encode("utf-8", "surrogatepass"))


def test_weights_that_vanish_in_float32_are_rejected() -> None:
    """A weight below 1e-6 would round towards zero on the device, so it is dead-lettered."""
    with pytest.raises(BadEvent, match="bad_value:weight"):
        decode_event(msgpack.packb({"user": "u", "item": "i", "weight": 1e-320}), 0.0)


def test_limits_bound_the_weight_and_the_event_time() -> None:
    """With limits, a weight above the maximum and a time past the allowed skew are rejected."""
    limits = EventLimits(max_weight=10.0, max_ts=DEFAULT_TS + 300)
    ok = decode_event(_pack({"user": "u", "item": "i", "weight": 10.0}), DEFAULT_TS, limits)
    assert ok.weight == 10.0
    for event, reason in (
        ({"user": "u", "item": "i", "weight": 10.5}, "bad_value:weight"),
        ({"user": "u", "item": "i", "ts": 1e300}, "bad_value:ts_future"),
        ({"user": "u", "item": "i", "ts": DEFAULT_TS + 301}, "bad_value:ts_future"),
    ):
        with pytest.raises(BadEvent, match=reason):
            decode_event(_json(event), DEFAULT_TS, limits)
    with pytest.raises(BadEvent, match="bad_value:ts_future"):  # the Kafka timestamp too
        decode_event(_pack({"user": "u", "item": "i"}), DEFAULT_TS + 301, limits)
