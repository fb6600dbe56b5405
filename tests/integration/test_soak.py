"""Soak test (`make faults`, not `make test`): fresh ids at a steady rate for minutes, flat memory.

Knobs (environment of the test run): `RECSTREAM_SOAK_S` (default 600 s) and
`RECSTREAM_SOAK_RATE` (default 2,000 events/s). The figures go to stdout as
JSON and to `RECSTREAM_SOAK_REPORT` (a path) when set.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
from fault_helpers import log_events

from stream.payload import decode_recommendation

RECSTREAM = str(Path(sys.executable).parent / "recstream")
SOAK_S = float(os.environ.get("RECSTREAM_SOAK_S", "600"))
RATE = float(os.environ.get("RECSTREAM_SOAK_RATE", "2000"))
MAX_USERS, MAX_ITEMS = 20_000, 5_000
CLICKS_PER_USER = 2  # a fresh user every 2 events: 1,000 new users/s at 2,000 events/s
NEW_ITEM_EVERY = 20  # a fresh item every 20 events (100/s); the rest pick among the newest 2,000
SAMPLE_EVERY_S = 5.0
MIB = 1024 * 1024


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def _click(n: int, ts: float) -> tuple[str, bytes]:
    user = f"s{n // CLICKS_PER_USER}"
    newest = n // NEW_ITEM_EVERY
    item = newest if n % NEW_ITEM_EVERY == 0 else max(0, newest - (n * 7919) % 2000)
    return user, msgpack.packb({"user": user, "item": f"j{item}", "ts": ts})


def _rss_bound(start: int) -> int:
    """End RSS allowed: 25% over the warmed-up start plus 64 MiB (see docs/reliability.md)."""
    return int(start * 1.25) + 64 * MIB


class _SteadyStream:
    """Produces fresh-id clicks at `RATE` while sampling the worker's RSS and the group's lag."""

    def __init__(self, bootstrap: str, topic: str, committed: Callable[[], int]) -> None:
        from confluent_kafka import Producer

        self.topic, self.committed = topic, committed
        # Larger record batches (100 ms of clicks): Tansu 0.6 was seen to stop answering
        # fetches on a topic after about 60,000 small batches per partition (see reliability.md).
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 100})
        self.ends: dict[int, int] = {}
        self.failed: list[str] = []
        self.last_ts: dict[str, float] = {}  # a sample of users: every 1,000th
        self.samples: list[dict[str, float]] = []
        self.sent = 0
        self.seconds = 0.0

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed.append(str(err))
        else:
            partition = msg.partition()
            self.ends[partition] = max(self.ends.get(partition, 0), msg.offset() + 1)

    def run(self, worker: subprocess.Popen[bytes]) -> None:
        """Send for `SOAK_S` seconds (or until the worker exits), then flush."""
        start = time.monotonic()
        next_sample = start
        while (elapsed := time.monotonic() - start) < SOAK_S and worker.poll() is None:
            while self.sent < int(elapsed * RATE):
                ts = time.time()
                user, value = _click(self.sent, ts)
                self.producer.produce(
                    self.topic, value=value, key=user.encode(), on_delivery=self._delivered
                )
                if (self.sent // CLICKS_PER_USER) % 1000 == 0:
                    self.last_ts[user] = ts
                self.sent += 1
            self.producer.poll(0)
            if time.monotonic() >= next_sample:
                lag = self.sent - self.committed()
                self.samples.append({"t_s": round(elapsed, 1), "rss": _rss(worker.pid), "lag": lag})
                next_sample += SAMPLE_EVERY_S
            time.sleep(0.01)
        self.seconds = time.monotonic() - start
        assert self.producer.flush(60) == 0


def _drain(worker: subprocess.Popen[bytes], done: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and worker.poll() is None:
        if done():
            return True
        time.sleep(1)
    return False


@pytest.mark.soak
@pytest.mark.timeout(SOAK_S + 600)
def test_soak_fresh_ids_at_a_steady_rate_keeps_memory_flat_and_loses_nothing(
    kafka_server: Any,
    worker_env: Any,
    names: Any,
    committed: Any,
    redis_client: Any,
    tmp_path: Path,
) -> None:
    """Minutes of never-seen users and items under low row caps: RSS flat, nothing lost, alive."""
    env = worker_env(
        RECSTREAM_MAX_USERS=str(MAX_USERS),
        RECSTREAM_MAX_ITEMS=str(MAX_ITEMS),
        RECSTREAM_SEEN_HISTORY="16",
        RECSTREAM_REDIS_TTL_S="3600",
    )
    log = tmp_path / "worker.log"
    stream = _SteadyStream(
        kafka_server.bootstrap,
        names.topic,
        lambda: sum(committed(names.group, names.topic).values()),
    )
    with log.open("w") as out:
        worker = subprocess.Popen([RECSTREAM, "run"], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            stream.run(worker)
            rss_end = _rss(worker.pid) if worker.poll() is None else 0
            drain_start = time.monotonic()
            drained = _drain(
                worker, lambda: committed(names.group, names.topic) == stream.ends, 300
            )
            drain_s = time.monotonic() - drain_start
            exited_on_its_own = worker.poll()
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(60)
    tail = log.read_text()[-3000:]
    samples, last_ts, n = stream.samples, stream.last_ts, stream.sent
    warm = [s for s in samples if s["t_s"] >= min(60.0, SOAK_S / 4)]
    rss_start = int(warm[0]["rss"]) if warm else 0
    stale = [
        user
        for user, ts in last_ts.items()
        if (raw := redis_client.get(f"{names.prefix}{user}")) is None
        or decode_recommendation(raw)["event_ts"] < ts
    ]
    events = log_events(log, "batch_published")
    processed = sum(e["events"] for e in events)
    report = {
        "test": "soak",
        "duration_s": round(stream.seconds, 1),
        "offered_rate": RATE,
        "achieved_rate": round(n / stream.seconds, 1),
        "produced": n,
        "users_produced": (n + CLICKS_PER_USER - 1) // CLICKS_PER_USER,
        "items_produced": n // NEW_ITEM_EVERY + 1,
        "max_users": MAX_USERS,
        "max_items": MAX_ITEMS,
        "processed": processed,
        "duplicates_processed": processed - n,
        "committed": sum(committed(names.group, names.topic).values()),
        "drain_s_after_producing": round(drain_s, 1),
        "sampled_users": len(last_ts),
        "sampled_users_stale": len(stale),
        "rss_start_mib": round(rss_start / MIB, 1),
        "rss_start_at_s": warm[0]["t_s"] if warm else None,
        "rss_end_mib": round(rss_end / MIB, 1),
        "rss_peak_mib": round(max((s["rss"] for s in samples), default=0) / MIB, 1),
        "rss_bound_mib": round(_rss_bound(rss_start) / MIB, 1),
        "max_lag": max((int(s["lag"]) for s in samples), default=0),
        "rss_mib_every_30s": [
            (s["t_s"], round(s["rss"] / MIB, 1)) for s in samples[:: int(30 / SAMPLE_EVERY_S)]
        ],
        "exit_code": code,
    }
    text = json.dumps(report, indent=1)
    (tmp_path / "soak.json").write_text(text)
    if target := os.environ.get("RECSTREAM_SOAK_REPORT"):
        Path(target).write_text(text)
    print(text)  # noqa: T201  (the figures for docs/reliability.md)
    assert exited_on_its_own is None, tail
    assert stream.failed == [], stream.failed[:3]
    assert drained, (committed(names.group, names.topic), stream.ends, tail)
    assert code == 0, tail
    assert last_ts, "no user sampled"
    assert stale == [], stale[:5]
    assert processed >= n
    assert warm, "no RSS sample after warm-up"
    assert rss_end <= _rss_bound(rss_start), report
