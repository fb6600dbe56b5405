"""Fault test on real servers: the Kafka broker is stopped mid-stream and started again.

The broker here is Tansu on its `s3://` engine against a local S3 server
(moto), so topics and committed offsets survive the restart the way they do on
a real cluster; the in-memory broker of the other tests would come back empty.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

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

DOWN_S = 5.0


@pytest.fixture
def kafka_server(s3_kafka: Any) -> Any:
    """This module's broker: the restartable s3-backed one (worker_env, produce, ... follow)."""
    return s3_kafka


def _published(log: Path) -> int:
    return sum(e["events"] for e in log_events(log, "batch_published"))


def test_broker_restart_mid_stream_loses_no_click_and_the_worker_rides_it_out(
    kafka_server: Any,
    worker_env: Any,
    names: Any,
    produce: Any,
    committed: Any,
    read_topic: Any,
    redis_client: Any,
    tmp_path: Path,
) -> None:
    """With the broker down 5 s mid-stream the worker stays up, reconnects and drains everything."""
    env = worker_env(RECSTREAM_BATCH_SIZE="200", RECSTREAM_BATCH_MS="20")
    clicks = click_stream(0, 12_000)
    first, second = clicks[:6000], clicks[6000:]
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen([RECSTREAM, "run"], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            sent_one = produce(names.topic, click_messages(first))
            # Stop as soon as the worker's own log shows it part-way through the first half.
            progressed = wait_until(lambda: _published(log) >= 1000, 60, every_s=0.05)
            stopped_at = time.time()
            kafka_server.stop()
            time.sleep(DOWN_S)
            alive_while_down = worker.poll() is None
            kafka_server.start()
            sent_two = produce(names.topic, [*click_messages(second), (b"bad", SENTINEL)])
            ends = {
                p: max(sent_one.ends.get(p, 0), sent_two.ends.get(p, 0))
                for p in sent_one.ends.keys() | sent_two.ends.keys()
            }
            drained = wait_until(lambda: committed(names.group, names.topic) == ends, 120)
            exited_on_its_own = worker.poll()
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(30)
    tail = log.read_text()[-3000:]
    assert progressed, tail
    events = log_events(log)
    batches = [e for e in events if e.get("event") == "batch_published"]
    # Mid-stream: when the broker went down the worker had published some of the first half.
    before_stop = sum(
        e["events"]
        for e in batches
        if datetime.fromisoformat(e["timestamp"]).timestamp() < stopped_at
    )
    assert 0 < before_stop < len(first), before_stop
    assert alive_while_down, tail
    assert exited_on_its_own is None, tail
    assert drained, (committed(names.group, names.topic), ends, tail)
    assert code == 0, tail
    last_ts = {user: ts for user, _, ts in clicks}  # time order: the last one wins
    stale = []
    for user, ts in last_ts.items():
        raw = redis_client.get(f"{names.prefix}{user}")
        if raw is None or decode_recommendation(raw)["event_ts"] < ts:
            stale.append(user)
    dlq = read_topic(names.dlq_topic, expected=1, timeout_s=30)
    processed = sum(e["events"] for e in batches)
    report = {
        "test": "broker_restart",
        "produced_valid": len(clicks),
        "produced_malformed": 1,
        "committed": sum(committed(names.group, names.topic).values()),
        "processed_before_stop": before_stop,
        "broker_down_s": DOWN_S,
        "processed": processed,
        "duplicates_processed": processed - len(clicks),
        "users_with_stale_lists": len(stale),
        "dlq": len(dlq),
        "transient_failures": sum(e.get("event") == "transient_failure" for e in events),
        "kafka_client_errors": sum(e.get("event") == "kafka_client_error" for e in events),
        "commits_skipped": sum(e.get("event") == "commit_skipped_group_moved_on" for e in events),
        "exit_code": code,
    }
    print(json.dumps(report))  # noqa: T201  (the figures for docs/reliability.md)
    assert stale == []
    assert [m.value() for m in dlq] == [SENTINEL]
    assert processed >= len(clicks)
