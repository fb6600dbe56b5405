"""The click event contract: decode msgpack or JSON bytes, validate, normalise.

Decoding never raises anything but `BadEvent`, whatever the bytes: the worker
relies on that to dead-letter a message and move on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import msgpack

from stream.errors import BadEvent

MAX_EVENT_BYTES = 64 * 1024
MAX_ID_BYTES = 128
SHORT_ID = MAX_ID_BYTES // 4  # a str this short is within the byte limit in any UTF-8
MAX_TYPE_BYTES = 64
# Weights travel as float32 on the device: keep them far from its overflow.
MAX_WEIGHT = 1e6
MIN_WEIGHT = 1e-6

_FRAME_ERRORS = (ValueError, TypeError, OverflowError, RecursionError, msgpack.UnpackException)


@dataclass(frozen=True, slots=True)
class EventLimits:
    """How much one valid event may weigh, and how far ahead of the worker's clock it may be.

    A hostile but well-formed event is bounded here: a weight above `max_weight` or an
    event time after `max_ts` (the wall clock plus the allowed skew) is a bad event.
    """

    max_weight: float = MAX_WEIGHT
    max_ts: float = math.inf


NO_LIMITS = EventLimits()  # the contract's own bounds only


@dataclass(frozen=True, slots=True)
class ClickEvent:
    """One valid click: ids normalised to str, `ts` in seconds since the epoch."""

    user: str
    item: str
    ts: float
    type: str = "click"
    weight: float = 1.0


def _reject_constant(name: str) -> float:
    """JSON's NaN/Infinity: parse them so the field check names the field."""
    return float(name.replace("Infinity", "inf"))


def _frame(value: bytes) -> object:
    """Bytes → Python object, JSON when the first byte is `{`, else msgpack."""
    if not value:
        raise BadEvent("empty_message")
    if len(value) > MAX_EVENT_BYTES:
        raise BadEvent("too_large")
    if value[:1] == b"{":
        try:
            return json.loads(value, parse_constant=_reject_constant)
        except (UnicodeDecodeError, *_FRAME_ERRORS):
            raise BadEvent("invalid_json") from None
    try:
        return msgpack.unpackb(value, raw=False, strict_map_key=False, timestamp=0)
    except (UnicodeDecodeError, *_FRAME_ERRORS):
        raise BadEvent("invalid_msgpack") from None


def _ident(event: dict[object, object], field: str) -> str:
    if field not in event:
        raise BadEvent(f"missing_field:{field}")
    value = event[field]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadEvent(f"bad_type:{field}")
    text = value if isinstance(value, str) else str(value)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates from JSON escapes
        raise BadEvent(f"bad_encoding:{field}") from None
    if not 1 <= size <= MAX_ID_BYTES:
        raise BadEvent(f"bad_length:{field}")
    return text


def _number(event: dict[object, object], field: str, default: float) -> float:
    value = event.get(field)
    if value is None:
        if field in event:
            raise BadEvent(f"bad_type:{field}")
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadEvent(f"bad_type:{field}")
    try:
        number = float(value)
    except OverflowError:
        raise BadEvent(f"bad_value:{field}") from None
    if not math.isfinite(number):
        raise BadEvent(f"bad_value:{field}")
    return number


def decode_event(
    value: bytes | None, default_ts: float, limits: EventLimits = NO_LIMITS
) -> ClickEvent:
    """Decode and validate one message value, or raise `BadEvent` with a reason.

    >>> decode_event(b'{"user": 7, "item": "i9"}', default_ts=1.0)
    ClickEvent(user='7', item='i9', ts=1.0, type='click', weight=1.0)
    """
    event = _frame(value or b"")
    if not isinstance(event, dict):
        raise BadEvent("not_a_map")
    user = _ident(event, "user")
    item = _ident(event, "item")
    ts = _number(event, "ts", default_ts)
    if ts < 0:
        raise BadEvent("bad_value:ts")
    if ts > limits.max_ts:
        raise BadEvent("bad_value:ts_future")
    weight = _number(event, "weight", 1.0)
    if not MIN_WEIGHT <= weight <= min(MAX_WEIGHT, limits.max_weight):
        raise BadEvent("bad_value:weight")
    kind = event.get("type", "click")
    if not isinstance(kind, str) or not 1 <= len(kind.encode("utf-8", "replace")) <= MAX_TYPE_BYTES:
        raise BadEvent("bad_type:type")
    return ClickEvent(user, item, ts, kind, weight)


def encode_event(event: ClickEvent) -> bytes:
    """The msgpack form producers send (used by replay and the demo)."""
    out: dict[str, Any] = {"user": event.user, "item": event.item, "ts": event.ts}
    if event.type != "click":
        out["type"] = event.type
    if event.weight != 1.0:
        out["weight"] = event.weight
    packed: bytes = msgpack.packb(out)
    return packed
