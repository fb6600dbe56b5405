"""Valid but hostile input, and a broken model, against real servers (issue 10, items 7 to 9).

One event may not take over every list, an event time far ahead of the clock is not
stored, a user id cannot name a key outside the prefix, and NaN never reaches Redis.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack
import torch
from fault_helpers import click_messages, click_stream

from stream.payload import Recommendation, decode_recommendation
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
    heaviest = settings.events.max_event_weight
    hostile = [
        {"user": "h1", "item": "evil-heavy", "ts": now, "weight": 1e6},
        {"user": "h2", "item": "evil-max", "ts": now, "weight": heaviest},
        {"user": "h3", "item": "evil-future", "ts": 1e300},
        {"user": "h4", "item": "evil-later", "ts": now + settings.events.max_clock_skew_s + 3600},
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


def test_a_broken_model_never_publishes_non_finite_scores(
    make_settings: Any, names: Any, produce: Any, committed: Any, redis_client: Any
) -> None:
    """With NaN in the model, lists are withheld and counted, the old ones stay, offsets move on."""
    worker = build_worker(make_settings())
    first, second = click_stream(0, 400), click_stream(400, 400)
    produce(names.topic, click_messages(first))
    try:
        assert worker.run_until(lambda w: w.totals.messages >= len(first), timeout_s=60)
        users = sorted({u for u, _, _ in first})
        before = {u: redis_client.get(f"{names.prefix}{u}") for u in users}
        cold_before = redis_client.get(names.cold_start_key)
        assert all(before.values())
        assert cold_before is not None
        with torch.no_grad():
            worker.learner.item_table.weight[:] = float("nan")
        sent = produce(names.topic, click_messages(second))
        total = len(first) + len(second)
        assert worker.run_until(lambda w: w.totals.messages >= total, timeout_s=60)
    finally:
        worker.close()
    assert {u: redis_client.get(f"{names.prefix}{u}") for u in users} == before
    assert redis_client.get(names.cold_start_key) == cold_before
    withheld = worker.metrics.lists_withheld
    assert withheld.labels(kind="users", reason="non_finite_scores")._value.get() >= 1
    assert sum(committed(names.group, names.topic).values()) == total
    assert sent.count == len(second)


def test_a_non_finite_cold_start_list_is_withheld_alone(
    make_settings: Any, names: Any, produce: Any, redis_client: Any, monkeypatch: Any
) -> None:
    """A cold-start list with a NaN score is not written; the users' finite lists still are."""
    worker = build_worker(make_settings())
    first, second = click_stream(0, 200), click_stream(200, 200)
    produce(names.topic, click_messages(first))
    try:
        assert worker.run_until(lambda w: w.totals.messages >= len(first), timeout_s=60)
        cold_before = redis_client.get(names.cold_start_key)
        good = worker.engine.cold_start()
        broken = Recommendation("", good.items, [float("nan")] * len(good.items), good.event_ts)
        monkeypatch.setattr(worker.engine, "cold_start", lambda: broken)
        produce(names.topic, click_messages(second))
        total = len(first) + len(second)
        assert worker.run_until(lambda w: w.totals.messages >= total, timeout_s=60)
    finally:
        worker.close()
    assert redis_client.get(names.cold_start_key) == cold_before
    last = decode_recommendation(redis_client.get(f"{names.prefix}{second[-1][0]}"))
    assert last["event_ts"] == second[-1][2]
    withheld = worker.metrics.lists_withheld
    assert withheld.labels(kind="cold_start", reason="non_finite_scores")._value.get() >= 1
