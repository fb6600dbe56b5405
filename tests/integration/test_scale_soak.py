"""Scale-out soak (`make faults`): 3 workers, fresh ids at a steady rate, one SIGKILLed every 2 min.

Knobs: `RECSTREAM_SOAK_S` (default 600 s), `RECSTREAM_SOAK_RATE` (default 2,000
events/s), `RECSTREAM_SOAK_KILL_S` (default 120 s). What is checked: every
click is committed in the end (none lost across the kills), each worker's peak
RSS after its warm-up stays within the single-worker soak's bound (25 % plus
64 MiB over its RSS at warm-up: batch-sized tensors of varying shapes move it by
tens of percent at a steady load, docs/reliability.md), and the state topic's live users
(the latest record per key that is not a tombstone, what compaction keeps) stay
within the row caps of the workers.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from fault_helpers import RunningWorker, wait_until
from test_soak import MIB, _click, _rss, _rss_bound

SOAK_S = float(os.environ.get("RECSTREAM_SOAK_S", "600"))
RATE = float(os.environ.get("RECSTREAM_SOAK_RATE", "2000"))
KILL_S = float(os.environ.get("RECSTREAM_SOAK_KILL_S", "120"))
WORKERS, PARTITIONS, MAX_USERS = 3, 12, 5_000
WARM_S = 90.0  # a worker's own age after which its RSS must stay flat


def _env(worker_env: Any) -> dict[str, str]:
    return worker_env(
        RECSTREAM_SCALE_OUT="true",
        RECSTREAM_KAFKA_TOPIC_PARTITIONS=str(PARTITIONS),
        RECSTREAM_ITEM_SYNC_S="1",
        RECSTREAM_STATE_FLUSH_S="5",
        RECSTREAM_MAX_USERS=str(MAX_USERS),
        RECSTREAM_MAX_ITEMS="5000",
        RECSTREAM_SEEN_HISTORY="16",
        RECSTREAM_KAFKA_SESSION_TIMEOUT_MS="6000",
    )


def _live_state_keys(bootstrap: str, topic: str) -> int:
    """Keys whose latest record on the state topic is not a tombstone (what compaction keeps)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"soak-state-{time.time()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p, 0) for p in metadata.partitions]
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in parts}
        consumer.assign(parts)
        latest: dict[bytes, bool] = {}
        done: set[int] = {p for p, end in ends.items() if end == 0}
        while len(done) < len(ends):
            for message in consumer.consume(10_000, 2.0):
                if message.error():
                    continue
                latest[message.key() or b""] = message.value() is not None
                if message.offset() + 1 >= ends[message.partition()]:
                    done.add(message.partition())
        return sum(latest.values())
    finally:
        consumer.close()


class _Schedule:
    """Produces fresh-id clicks at `RATE`, samples RSS, and kills then replaces a worker on time."""

    def __init__(self, workers: list[RunningWorker], env: dict[str, str], bootstrap: str) -> None:
        self.workers, self.env = workers, env
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 100})
        self.started = {id(w): time.monotonic() for w in workers}
        self.samples: dict[int, list[tuple[float, int]]] = {id(w): [] for w in workers}
        self.sent = self.kills = 0

    def run(self, topic: str) -> None:
        start = time.monotonic()
        next_kill, next_sample = start + KILL_S, start
        while (elapsed := time.monotonic() - start) < SOAK_S:
            while self.sent < int(elapsed * RATE):
                user, value = _click(self.sent, time.time())
                self.producer.produce(topic, value=value, key=user.encode())
                self.sent += 1
            self.producer.poll(0)
            now = time.monotonic()
            if now >= next_sample:
                self._sample(now)
                next_sample += 5.0
            if now >= next_kill:
                self._kill_and_replace()
                next_kill += KILL_S
            time.sleep(0.01)
        assert self.producer.flush(60) == 0

    def _sample(self, now: float) -> None:
        for w in self.workers:
            if w.process.poll() is None:
                self.samples[id(w)].append((now - self.started[id(w)], _rss(w.process.pid)))

    def _kill_and_replace(self) -> None:
        at = self.kills % WORKERS
        victim = self.workers[at]
        victim.process.kill()
        victim.process.wait(10)
        replacement = RunningWorker(self.env)
        self.workers[at] = replacement
        self.started[id(replacement)] = time.monotonic()
        self.samples[id(replacement)] = []
        self.kills += 1

    def after_warmup(self) -> list[tuple[int, int]]:
        """Each worker's RSS at warm-up and its peak after it (those that lived on)."""
        out = []
        for points in self.samples.values():
            warm = [rss for age, rss in points if age >= WARM_S]
            if len(warm) >= 2:
                out.append((warm[0], max(warm)))
        return sorted(out)


@pytest.mark.soak
@pytest.mark.timeout(SOAK_S + 900)
def test_three_workers_one_killed_every_two_minutes_lose_nothing_and_stay_flat(
    kafka_server: Any, worker_env: Any, names: Any, committed: Any
) -> None:
    """Fresh ids at a steady rate, a worker SIGKILLed and replaced on schedule: nothing lost."""
    env = _env(worker_env)
    workers = [RunningWorker(env) for _ in range(WORKERS)]
    schedule = _Schedule(workers, env, kafka_server.bootstrap)
    try:
        assert wait_until(lambda: all(w.events("partitions_assigned") for w in workers), 120)
        schedule.run(names.topic)
        total = schedule.sent
        drained = wait_until(
            lambda: sum(committed(names.group, names.topic).values()) >= total, 600, 2.0
        )
        # A user evicted after the last flush is tombstoned at the next one (every
        # RECSTREAM_STATE_FLUSH_S): the bound holds once that flush is in.
        cap = WORKERS * MAX_USERS
        state = f"{names.topic}.state"
        live_within = wait_until(
            lambda: _live_state_keys(kafka_server.bootstrap, state) <= cap, 60, 5
        )
        live = _live_state_keys(kafka_server.bootstrap, state)
    finally:
        codes = [w.stop(60) for w in workers]
    memory = schedule.after_warmup()
    report = {
        "sent": schedule.sent,
        "kills": schedule.kills,
        "committed": sum(committed(names.group, names.topic).values()),
        "rss_mib_warm_and_peak": [(start // MIB, peak // MIB) for start, peak in memory],
        "live_state_users": live,
        "exit_codes": codes,
    }
    print(json.dumps(report))  # noqa: T201 (pytest -s shows the figures)
    assert drained, report
    assert schedule.kills >= int(SOAK_S // KILL_S) - 1, report
    assert memory, report
    assert all(peak <= _rss_bound(start) for start, peak in memory), report
    assert live_within, report  # each owner caps its rows; evictions tombstoned
    assert codes == [0] * WORKERS, report
