"""The whole path on real servers: clicks in Tansu → worker → lists in Valkey."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from typing import Any

import msgpack

from stream.payload import decode_recommendation
from worker.app import build_worker

MALFORMED = [
    b"",
    b"\xff\xfe",
    b"{not json",
    msgpack.packb({"user": "u"}),
    msgpack.packb({"item": "i"}),
    msgpack.packb({"user": None, "item": "x"}),
    msgpack.packb({"user": "u" * 1000, "item": "x"}),
    msgpack.packb({"user": "u", "item": "x", "weight": float("nan")}),
    msgpack.packb([1, 2, 3]),
    json.dumps({"user": "u", "item": "x", "ts": "yesterday"}).encode(),
]


def _clicks(users: int, items: int, events: int, seed: int) -> list[tuple[str, str, float]]:
    rng = random.Random(seed)
    out = []
    for n in range(events):
        user = f"u{rng.randrange(users)}"
        # two taste groups: even users favour even items, odd users odd ones
        pool = range(int(user[1:]) % 2, items, 2) if rng.random() < 0.9 else range(items)
        out.append((user, f"i{rng.choice(list(pool))}", 1_700_000_000.0 + n))
    return out


def _encode(user: str, item: str, ts: float, n: int) -> bytes:
    event: dict[str, Any] = {"user": user, "item": item, "ts": ts}
    if n % 3 == 0:  # a third as JSON, the rest msgpack, as the contract allows
        return json.dumps(event).encode()
    return msgpack.packb(event)


def test_every_clicker_gets_a_fresh_list_and_bad_input_reaches_the_dlq(
    make_settings: Any,
    names: Any,
    produce: Any,
    read_topic: Any,
    committed: Any,
    redis_client: Any,
) -> None:
    """Each clicker gets K unseen items, malformed input lands in the DLQ, offsets reach the end."""
    settings = make_settings()
    worker = build_worker(settings)
    clicks = _clicks(users=60, items=80, events=3000, seed=1)
    messages = [(u.encode(), _encode(u, i, ts, n)) for n, (u, i, ts) in enumerate(clicks)]
    for position, bad in zip(range(100, 3000, 300), MALFORMED, strict=False):
        messages.insert(position, (b"bad", bad))
    sent = produce(names.topic, messages)
    try:
        assert worker.run_until(lambda w: w.totals.messages >= len(messages), timeout_s=90)
    finally:
        worker.close()

    assert worker.totals.events == len(clicks)
    assert worker.totals.dead_lettered == len(MALFORMED)
    seen: dict[str, set[str]] = defaultdict(set)
    last_ts: dict[str, float] = {}
    for user, item, ts in clicks:
        seen[user].add(item)
        last_ts[user] = max(ts, last_ts.get(user, 0.0))
    for user, items in seen.items():
        raw = redis_client.get(f"{names.prefix}{user}")
        assert raw is not None, f"no list for {user}"
        value = decode_recommendation(raw)
        assert set(value) == {"items", "scores", "ts", "event_ts", "version"}
        assert len(value["items"]) == settings.ranking.top_k
        assert len(set(value["items"])) == settings.ranking.top_k
        assert not set(value["items"]) & items, f"{user} was recommended an item they clicked"
        assert value["scores"] == sorted(value["scores"], reverse=True)
        assert value["event_ts"] == last_ts[user]
        assert 0 < redis_client.ttl(f"{names.prefix}{user}") <= 600

    dlq = read_topic(names.dlq_topic, expected=len(MALFORMED))
    assert sorted(m.value() or b"" for m in dlq) == sorted(MALFORMED)
    for message in dlq:
        headers = dict(message.headers())
        assert headers["recstream.reason"]
        assert headers["recstream.source"].startswith(names.topic.encode())

    assert committed(names.group, names.topic) == sent.ends


def test_lists_learn_the_planted_tastes(
    make_settings: Any, names: Any, produce: Any, redis_client: Any
) -> None:
    """Users who mostly click even items get mostly even items recommended, and odd likewise."""
    worker = build_worker(make_settings(dim=16))
    clicks = _clicks(users=40, items=400, events=6000, seed=2)
    sent = produce(names.topic, [(u.encode(), _encode(u, i, ts, 1)) for u, i, ts in clicks])
    try:
        assert worker.run_until(lambda w: w.totals.messages >= sent.count, timeout_s=90)
    finally:
        worker.close()
    agree = total = 0
    for user in {u for u, _, _ in clicks}:
        taste = int(user[1:]) % 2
        items = decode_recommendation(redis_client.get(f"{names.prefix}{user}"))["items"]
        agree += sum(int(item[1:]) % 2 == taste for item in items)
        total += len(items)
    assert agree / total > 0.75, f"only {agree}/{total} listed items match the planted taste"


def test_lag_counts_what_is_left_and_reaches_zero(
    make_settings: Any, names: Any, produce: Any
) -> None:
    """The lag gauge shows messages still to process mid-stream and zero once drained."""
    worker = build_worker(make_settings(batch_size=300))
    clicks = _clicks(users=20, items=50, events=3000, seed=4)
    produce(names.topic, [(u.encode(), _encode(u, i, ts, 1)) for u, i, ts in clicks])
    try:
        assert worker.run_until(lambda w: w.totals.messages > 0, timeout_s=60)
        mid = worker.metrics.lag._value.get()
        assert 0 < mid <= 3000 - worker.totals.messages
        assert worker.run_until(lambda w: w.totals.messages >= 3000, timeout_s=60)
        assert worker.metrics.lag._value.get() == 0
    finally:
        worker.close()
