"""A removal reaches the lists already stored: the sweep, on real Tansu and Valkey."""

from __future__ import annotations

import json
from typing import Any

import msgpack
from fault_helpers import wait_until

from stream.list_sweep import ListSweeper, needle
from stream.payload import Recommendation, decode_recommendation, encode_recommendation
from stream.redis_sink import RedisSink
from worker.app import build_worker


def _click(user: str, item: str, n: int) -> tuple[bytes, bytes]:
    return user.encode(), msgpack.packb({"user": user, "item": item, "ts": 1_700_000_000.0 + n})


def _stored(redis_client: Any, prefix: str) -> dict[str, list[str]]:
    """Every list stored under `prefix`, by key (SCAN, as an operator would check)."""
    out = {}
    for key in redis_client.scan_iter(match=f"{prefix}*", count=500):
        raw = redis_client.get(key)
        if raw is not None:
            out[key.decode()] = decode_recommendation(raw)["items"]
    return out


def test_a_removed_popular_item_leaves_every_stored_list_within_the_bound(
    make_settings: Any, names: Any, produce: Any, redis_client: Any
) -> None:
    """After `remove` of the item on most lists, no stored list names it; the rest is kept."""
    control = f"{names.topic}.control"
    settings = make_settings(kafka_control_topic=control, control_sweep_s=10)
    # "hit" is clicked by the a-users, so it tops the lists of the b-users, whose one click
    # is an item nobody else clicked (nothing competes with the popular item there).
    clicks = [_click(f"a{n % 30}", "hit", n) for n in range(300)]
    clicks += [_click(f"a{n % 30}", f"i{n % 40}", 300 + n) for n in range(300)]
    clicks += [_click(f"b{n}", f"solo-b{n}", 600 + n) for n in range(200)]
    worker = build_worker(settings)
    try:
        sent = produce(names.topic, clicks)
        assert worker.run_until(lambda w: w.totals.messages >= sent.count, timeout_s=120)
        before = _stored(redis_client, names.prefix)
        naming = [key for key, items in before.items() if "hit" in items]
        assert len(naming) >= 150, f"only {len(naming)} of {len(before)} lists name the hit"

        produce(control, [(None, json.dumps({"op": "remove", "item": "hit"}).encode())])
        assert worker.run_until(lambda w: len(w.engine.catalogue) == 1, timeout_s=30)
        # No more clicks: from here only the sweep writes, off the loop.
        assert wait_until(
            lambda: (
                not any("hit" in items for items in _stored(redis_client, names.prefix).values())
            ),
            timeout_s=60,
        )
        after = _stored(redis_client, names.prefix)
        assert after.keys() == before.keys()
        for key, items in before.items():
            assert after[key] == [item for item in items if item != "hit"], key
        assert all(redis_client.ttl(key) > 0 for key in naming[:20])  # TTL kept
        assert worker.metrics.sweep_rewritten._value.get() >= len(naming)
    finally:
        worker.close()


def _list(items: list[str]) -> bytes:
    scores = [float(len(items) - n) for n in range(len(items))]
    return encode_recommendation(Recommendation("", items, scores, 1_700_000_000.5), 1.7e9, 3)


def test_the_sweeper_rewrites_only_lists_that_name_the_item(
    redis_server: Any, redis_client: Any, names: Any
) -> None:
    """Lists naming it lose it; others, other writers' keys and keys outside the prefix stay."""
    sink = RedisSink(redis_server.url, prefix=names.prefix, ttl_s=600)
    sweeper = ListSweeper.connect(redis_server.url, names.prefix, page=50)
    try:
        payloads = [
            (f"u{n}", _list([f"x{n}", "gone", "keep"] if n % 3 == 0 else ["keep"]))
            for n in range(300)
        ]
        sink.publish(payloads)
        redis_client.hset(f"{names.prefix}not-a-list", "gone", "1")  # another writer's key
        redis_client.set(f"{names.topic}:outside", needle("gone"))  # not under the prefix
        redis_client.set(f"{names.prefix}junk", b"\xa4gone but not msgpack of a list")

        stats = sweeper.sweep({"gone"})

        assert stats.scanned >= 302
        assert stats.rewritten == 100
        for n in range(0, 300, 3):
            value = decode_recommendation(redis_client.get(f"{names.prefix}u{n}"))
            assert value["items"] == [f"x{n}", "keep"]
            assert value["scores"] == [3.0, 1.0]  # each kept item keeps its score
            assert (value["ts"], value["event_ts"], value["version"]) == (1.7e9, 1_700_000_000.5, 3)
        assert decode_recommendation(redis_client.get(f"{names.prefix}u1"))["items"] == ["keep"]
        assert redis_client.hget(f"{names.prefix}not-a-list", "gone") == b"1"
        assert redis_client.get(f"{names.topic}:outside") == needle("gone")
        assert redis_client.get(f"{names.prefix}junk").startswith(b"\xa4gone")
        assert 0 < redis_client.ttl(f"{names.prefix}u0") <= 600
        assert sweeper.sweep({"gone"}).rewritten == 0  # nothing left to do
    finally:
        sweeper.close()
        sink.close()


def test_a_list_rewritten_meanwhile_is_not_clobbered(
    redis_server: Any, redis_client: Any, names: Any
) -> None:
    """The compare-and-set leaves a list alone when the worker replaced it after the read."""
    sweeper = ListSweeper.connect(redis_server.url, names.prefix)
    try:
        key = f"{names.prefix}u"
        stale, fresh = _list(["gone", "a"]), _list(["b", "c"])
        redis_client.set(key, fresh)  # the worker's newer write, after the sweep read `stale`
        assert not sweeper._swap(keys=[key], args=[stale, _list(["a"])])
        assert redis_client.get(key) == fresh
    finally:
        sweeper.close()
