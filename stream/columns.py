"""Columnar decode of a run of common msgpack events: whole columns checked at once, no loop.

A batch is almost always the same shape: msgpack maps of `user`, `item` and
perhaps `ts`, short ids. Here such a run is unpacked and checked a column at a
time with C-level passes (`map`, `set`, `min`, `max`, `sum`), so no Python
frame, tuple or event object is made per message. Any message the run cannot
vouch for makes the whole run None, and the caller decodes that run one message
at a time (`stream.batch`), where the full decoder gives each bad event its
reason. What is accepted here is a subset of what `stream.events.decode_event`
accepts, with the same fields: a property test holds the two together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import repeat
from typing import cast

import msgpack

from stream.events import MAX_EVENT_BYTES, SHORT_ID

_TS_TYPES = frozenset({float, int, type(None)})
_ID_TYPES = frozenset({str, int})
_DICT_ONLY = frozenset({dict})
_MAP_KEYS = 2  # user and item, both required; `ts` is the one optional third

Columns = tuple[list[str], list[str], list[float]]


def common_columns(
    values: Sequence[bytes | None], produced: Sequence[float], max_ts: float
) -> Columns | None:
    """Users, items and event times of a run of common events, or None if any is not one.

    `produced` (Kafka timestamps, seconds) stands in for an absent `ts`, as the
    full decoder's default does; an event time after `max_ts` is not common.
    """
    if not values:
        return [], [], []
    events = _maps(values)
    if events is None:
        return None
    users = _ids(events, "user")
    items = _ids(events, "item") if users is not None else None
    if users is None or items is None:
        return None
    times = _times(events, produced, max_ts)
    return None if times is None else (users, items, times)


def _maps(values: Sequence[bytes | None]) -> list[dict[object, object]] | None:
    """Each value unpacked, if every one is a msgpack map of a size the decoder takes."""
    try:
        sizes = list(map(len, cast("Sequence[bytes]", values)))  # a None raises: not common
    except TypeError:
        return None
    if min(sizes) == 0 or max(sizes) > MAX_EVENT_BYTES:
        return None
    try:
        # Default options on purpose: str map keys and valid UTF-8 only, and cheaper per call.
        # A JSON value (first byte `{`, msgpack's fixint 123) raises or is no map.
        events = list(map(msgpack.unpackb, values))
    except Exception:  # noqa: BLE001  (the full decoder names the failure)
        return None
    return events if set(map(type, events)) == _DICT_ONLY else None


def _ids(events: list[dict[object, object]], field: str) -> list[str] | None:
    """The `field` column as str, if every one is a str or int (no bool) of a short length."""
    column = list(map(dict.get, events, repeat(field)))
    kinds = set(map(type, column))
    if not kinds <= _ID_TYPES:
        return None
    ids = list(map(str, column)) if int in kinds else cast("list[str]", column)
    lengths = list(map(len, ids))
    if min(lengths) < 1 or max(lengths) > SHORT_ID:
        return None
    return ids


def _times(
    events: list[dict[object, object]], produced: Sequence[float], max_ts: float
) -> list[float] | None:
    """Event times, each `ts` or else its produce time, if every map is `user, item[, ts]`."""
    column = list(map(dict.get, events, repeat("ts")))
    kinds = set(map(type, column))
    if not kinds <= _TS_TYPES:
        return None
    present = len(column) - column.count(None)
    # Each map holds user and item (checked) and, where `present`, a ts: at least 2n + present
    # keys in all, and exactly that many when no map holds another key (a nil ts included).
    if sum(map(len, events)) != _MAP_KEYS * len(events) + present:
        return None
    if present == 0:
        times: list[float] = list(produced)
    elif present < len(column):
        times = [
            p if t is None else cast("float", t) for t, p in zip(column, produced, strict=True)
        ]
    else:
        times = cast("list[float]", column)
    if int in kinds:
        times = list(map(float, times))
    # A NaN or an infinity (or a sum too large for a float) leaves the sum not finite.
    if not math.isfinite(sum(times)) or min(times) < 0.0 or max(times) > max_ts:
        return None
    return times


__all__ = ["Columns", "common_columns"]
