"""Bounded state on real servers: far more distinct ids than the caps, rows stay within them."""

from __future__ import annotations

import random
from typing import Any

import msgpack

from stream.payload import decode_recommendation
from worker.app import build_worker


def test_rows_stay_within_caps_nothing_is_lost_and_lists_hold_only_live_items(
    make_settings: Any, names: Any, produce: Any, committed: Any, redis_client: Any
) -> None:
    """With 20x more users and items than the caps, rows stay capped, offsets reach the end."""
    max_users, max_items = 40, 30
    worker = build_worker(make_settings(max_users=max_users, max_items=max_items, batch_size=128))
    rng = random.Random(5)
    clicks = [
        (f"u{rng.randrange(800)}", f"i{rng.randrange(600)}", 1_700_000_000.0 + n)
        for n in range(4000)
    ]
    messages = [
        (u.encode(), msgpack.packb({"user": u, "item": i, "ts": ts})) for u, i, ts in clicks
    ]
    published: list[tuple[str, list[str]]] = []
    publish = worker.sink.publish

    def checked_publish(payloads: list[tuple[str, bytes]], cold_start: bytes | None) -> None:
        """Every list goes out naming only items that hold a row at that moment."""
        items = worker.learner.items
        assert cold_start is not None
        for user, payload in [("(cold start)", cold_start), *payloads]:
            listed = decode_recommendation(payload)["items"]
            assert all(item in items for item in listed), f"{user} got an evicted item"
            published.append((user, listed))
        publish(payloads, cold_start)

    worker.sink.publish = checked_publish  # type: ignore[method-assign]
    sent = produce(names.topic, messages)
    try:
        assert worker.run_until(lambda w: w.totals.messages >= len(messages), timeout_s=120)
        learner = worker.learner
        assert len(learner.users) <= max_users
        assert len(learner.items) <= max_items
        assert learner.users.extent <= max_users
        assert learner.items.extent <= max_items
        assert learner.user_table.capacity <= max_users
        assert learner.item_table.capacity <= max_items
    finally:
        worker.close()

    assert worker.totals.events == len(clicks)
    assert committed(names.group, names.topic) == sent.ends
    sample = worker.metrics.registry.get_sample_value
    evicted_users = sample("recstream_rows_evicted_total", {"kind": "user", "cause": "lru"})
    evicted_items = sample("recstream_rows_evicted_total", {"kind": "item", "cause": "lru"})
    assert evicted_users is not None
    assert evicted_users > 0
    assert evicted_items is not None
    assert evicted_items > 0
    unlearned = sample("recstream_events_unlearned_total", {})
    assert unlearned is not None
    assert 0 < unlearned < len(clicks)
    assert published
    last_user, last_items = published[-1]
    stored = decode_recommendation(redis_client.get(f"{names.prefix}{last_user}"))
    assert stored["items"] == last_items
