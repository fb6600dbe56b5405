"""Catalogue control on real servers: an operator removes the item that tops every list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack

from stream.payload import decode_recommendation
from worker.app import build_worker


def _click(user: str, item: str, n: int) -> tuple[bytes, bytes]:
    return user.encode(), msgpack.packb({"user": user, "item": item, "ts": 1_700_000_000.0 + n})


def _lists(redis_client: Any, prefix: str, users: list[str]) -> dict[str, list[str]]:
    out = {}
    for user in users:
        raw = redis_client.get(f"{prefix}{user}")
        if raw is not None:
            out[user] = decode_recommendation(raw)["items"]  # type: ignore[assignment]
    return out


def test_a_removed_item_leaves_every_list_published_after_and_stays_removed(
    make_settings: Any,
    names: Any,
    produce: Any,
    read_topic: Any,
    redis_client: Any,
    tmp_path: Path,
) -> None:
    """Removed: in no list written after, nor the cold-start list; kept across a restart."""
    control = f"{names.topic}.control"
    settings = make_settings(
        kafka_control_topic=control, checkpoint_dir=tmp_path, checkpoint_interval_s=1e9
    )
    # Phase 1: "hit" is clicked by everyone in the first group, so it tops the cold-start
    # list and the lists of users whose one click (an item no one else clicked, so no
    # item-to-item transition competes) says nothing else yet.
    first = [_click(f"a{n % 30}", "hit", n) for n in range(300)]
    first += [_click(f"a{n % 30}", f"i{n % 40}", 300 + n) for n in range(300)]
    first += [_click(f"b{n}", f"solo-b{n}", 600 + n) for n in range(20)]
    worker = build_worker(settings)
    try:
        sent = produce(names.topic, first)
        assert worker.run_until(lambda w: w.totals.messages >= sent.count, timeout_s=90)
        before = _lists(redis_client, names.prefix, [f"b{n}" for n in range(20)])
        assert sum(items[0] == "hit" for items in before.values()) >= 15
        cold = decode_recommendation(redis_client.get(names.cold_start_key))
        assert cold["items"][0] == "hit"

        produce(control, [(None, json.dumps({"op": "remove", "item": "hit"}).encode())])
        produce(control, [(None, msgpack.packb({"op": "delete", "item": "hit"}))])  # bad op
        assert worker.run_until(lambda w: len(w.engine.catalogue) == 1, timeout_s=30)
        cold = decode_recommendation(redis_client.get(names.cold_start_key))
        assert "hit" not in cold["items"]  # rewritten at once, not at the next batch

        second = [_click(f"c{n}", f"solo-c{n}", 1000 + n) for n in range(40)]
        second += [_click(f"b{n}", "i7", 2000 + n) for n in range(20)]
        done = worker.totals.messages + len(second)
        produce(names.topic, second)
        assert worker.run_until(lambda w: w.totals.messages >= done, timeout_s=90)
        after = _lists(redis_client, names.prefix, [f"c{n}" for n in range(40)])
        after |= _lists(redis_client, names.prefix, [f"b{n}" for n in range(20)])
        assert len(after) == 60
        assert not [user for user, items in after.items() if "hit" in items]
        assert worker.checkpoint() is not None  # as a clean stop writes it: the catalogue too
    finally:
        worker.close()

    dlq = read_topic(names.dlq_topic, expected=1)
    assert dict(dlq[0].headers())["recstream.reason"] == b"bad_value:op"

    restarted = build_worker(settings)
    try:
        assert restarted.engine.catalogue.hidden() == {"hit": "remove"}
        produce(names.topic, [_click("d0", "solo-d0", 3000)])
        assert restarted.run_until(lambda w: w.totals.messages >= 1, timeout_s=60)
        items = _lists(redis_client, names.prefix, ["d0"])["d0"]
        assert "hit" not in items
        produce(control, [(None, json.dumps({"op": "restore", "item": "hit"}).encode())])
        assert restarted.run_until(lambda w: len(w.engine.catalogue) == 0, timeout_s=30)
        produce(names.topic, [_click("d1", "solo-d1", 3001)])
        assert restarted.run_until(lambda w: w.totals.messages >= 2, timeout_s=60)
        assert "hit" in _lists(redis_client, names.prefix, ["d1"])["d1"]
    finally:
        restarted.close()
