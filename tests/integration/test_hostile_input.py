"""Valid but hostile input against real servers (issue 10, items 8 and 9).

One event may not take over every list, an event time far ahead of the clock is not
stored, and a user id cannot name a key outside the prefix.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack
from fault_helpers import click_messages, click_stream

from stream import decode_recommendation
from worker.app import build_worker


def _background(now: float, events: int) -> list[tuple[bytes, bytes]]:
    """40 users over 60 items, `i0` the most clicked, the last event a second before `now`."""
    clicks = []
    for n in range(events):
        user = f"u{n % 40}"
        item = "i0" if n % 5 == 0 else f"i{(n * 7) % 60}"
        clicks.append((user, item, now - 1.0 - (events - n) * 0.01))
    return click_messages(clicks)


def test_one_hostile_event_cannot_take_over_the_lists(
    make_settings: Any, names: Any, produce: Any, read_topic: Any, redis_client: Any
) -> None:
    """A huge weight and far-future times are dead-lettered; the heaviest allowed one leads none."""
    settings = make_settings()
    worker = build_worker(settings)
    now = time.time()
    heaviest = settings.max_event_weight
    hostile = [
        {"user": "h1", "item": "evil-heavy", "ts": now, "weight": 1e6},
        {"user": "h2", "item": "evil-max", "ts": now, "weight": heaviest},
        {"user": "h3", "item": "evil-future", "ts": 1e300},
        {"user": "h4", "item": "evil-later", "ts": now + settings.max_clock_skew_s + 3600},
    ]
    messages = [
        *_background(now, 2000),
        *[(str(e["user"]).encode(), msgpack.packb(e)) for e in hostile],
        *_background(now, 80),  # every user publishes again after the hostile events
    ]
    produce(names.topic, messages)
    try:
        assert worker.run_until(lambda w: w.totals.messages >= len(messages), timeout_s=90)
    finally:
        worker.close()

    dlq = read_topic(names.dlq_topic, expected=3)
    reasons = sorted(dict(m.headers())["recstream.reason"].decode() for m in dlq)
    assert reasons == ["bad_value:ts_future", "bad_value:ts_future", "bad_value:weight"]
    cold = decode_recommendation(redis_client.get(names.cold_start_key))
    assert cold["items"][0] != "evil-max"
    assert "evil-heavy" not in cold["items"]
    firsts = []
    for user in [f"u{n}" for n in range(40)]:
        value = decode_recommendation(redis_client.get(f"{names.prefix}{user}"))
        assert "evil-heavy" not in value["items"]
        assert value["event_ts"] <= time.time()
        firsts.append(value["items"][0])
    assert firsts.count("evil-max") < len(firsts) // 4, firsts
    assert redis_client.get(f"{names.prefix}h3") is None  # nothing of the dead-lettered users
    assert redis_client.get(f"{names.prefix}h4") is None


def test_a_user_id_names_only_a_key_under_the_prefix(
    make_settings: Any, names: Any, produce: Any, redis_client: Any
) -> None:
    """Users named like an unrelated key and like the cold-start key touch neither of them."""
    unrelated = f"session:admin-{names.group}"
    redis_client.set(unrelated, b"not a list", ex=600)
    worker = build_worker(make_settings())
    events = [
        *click_stream(0, 200),
        (unrelated, "i1", 1_700_000_300.0),
        (names.cold_start_key, "i2", 1_700_000_301.0),
    ]
    produce(names.topic, click_messages(events))
    try:
        assert worker.run_until(lambda w: w.totals.messages >= len(events), timeout_s=60)
    finally:
        worker.close()
    assert redis_client.get(unrelated) == b"not a list"
    assert redis_client.get(f"{names.prefix}{unrelated}") is not None
    own = decode_recommendation(redis_client.get(f"{names.prefix}{names.cold_start_key}"))
    cold = decode_recommendation(redis_client.get(names.cold_start_key))
    assert "i2" not in own["items"]  # the user's own list, without the item they clicked
    assert cold["event_ts"] == max(ts for _, _, ts in events)
