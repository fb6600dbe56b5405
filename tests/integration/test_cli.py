"""The `recstream` command as a deployer runs it: environment in, exit codes out."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import msgpack
from fault_helpers import output_events, wait_until

from worker.testing.embedded import free_port

RECSTREAM = str(Path(sys.executable).parent / "recstream")


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSTREAM_")}
    env.update(values)
    return env


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310  (loopback)
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


def test_run_serves_health_and_drains_on_sigterm(
    worker_env: Any,
    names: Any,
    produce: Any,
    committed: Any,
    redis_client: Any,
) -> None:
    """`recstream run` publishes, serves health and metrics, exits 0 on SIGTERM, all committed."""
    port = free_port()
    env = worker_env(
        RECSTREAM_KAFKA_TOPIC_PARTITIONS="2",
        RECSTREAM_TOP_K="5",
        RECSTREAM_DIM="8",
        RECSTREAM_METRICS_PORT=str(port),
    )
    proc = subprocess.Popen(
        [RECSTREAM, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        events = [(f"u{n % 7}", f"i{n % 50}") for n in range(400)]
        sent = produce(
            names.topic,
            [(u.encode(), msgpack.packb({"user": u, "item": i})) for u, i in events],
        )
        expected = ("recstream_events_total 400.0", "recstream_consumer_lag 0.0")

        def caught_up() -> bool:
            # Counted after the commit, and the lag gauge refreshed by the next idle poll:
            # both a moment after the broker holds the commit, so each is waited for.
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            if sum(committed(names.group, names.topic).values()) != sent.count:
                return False
            status, metrics = _get(f"http://127.0.0.1:{port}/metrics")
            return status == 200 and all(line in metrics.splitlines() for line in expected)

        assert wait_until(caught_up, 120), _get(f"http://127.0.0.1:{port}/metrics")[1][-3000:]
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        assert wait_until(lambda: _get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 60)
        check = [RECSTREAM, "healthcheck", "--ready"]
        assert subprocess.run(check, env=env, timeout=60, check=False).returncode == 0
        assert redis_client.get(f"{names.prefix}u3") is not None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()[-2000:]
    assert output_events(out, "worker_stopped")
    assert committed(names.group, names.topic) == sent.ends


def test_run_rejects_bad_settings_by_name() -> None:
    """A bad setting stops `recstream run` at start, exit 2, with the variable named."""
    env = _env(RECSTREAM_TOP_K="zero", RECSTREAM_DEVICE="tpu")
    proc = subprocess.run([RECSTREAM, "run"], env=env, capture_output=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "RECSTREAM_TOP_K" in proc.stderr.decode()
    assert "RECSTREAM_DEVICE" in proc.stderr.decode()


def test_healthcheck_with_a_bad_setting_is_one_line_and_exit_2() -> None:
    """`recstream healthcheck` with settings it cannot use: exit 2, one line, no traceback."""
    for bad in (
        {"RECSTREAM_TOP_K": "zero", "RECSTREAM_DEVICE": "tpu"},
        {"RECSTREAM_METRICS_PORT": "notaport"},
        {"RECSTREAM_METRICS_PORT": "0"},
    ):
        proc = subprocess.run(
            [RECSTREAM, "healthcheck"],
            env=_env(**bad),
            capture_output=True,
            timeout=60,
            check=False,
        )
        err = proc.stderr.decode()
        assert proc.returncode == 2, err
        assert len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err
        assert all(name in err for name in bad), err


def test_replay_sends_a_movielens_file_in_time_order(
    kafka_server: Any, names: Any, read_topic: Any, tmp_path: Path
) -> None:
    """`recstream replay` sends every row of a u.data file, keyed by user, oldest first."""
    data = tmp_path / "u.data"
    data.write_text("1\t10\t5\t300\n2\t20\t3\t100\n1\t30\t4\t200\n")
    env = _env(RECSTREAM_KAFKA_BOOTSTRAP=kafka_server.bootstrap, RECSTREAM_KAFKA_TOPIC=names.topic)
    proc = subprocess.run(
        [RECSTREAM, "replay", str(data)], env=env, capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    messages = read_topic(names.topic, expected=3)
    events = sorted((msgpack.unpackb(m.value()) for m in messages), key=lambda e: e["ts"])
    assert [(e["user"], e["item"], e["ts"]) for e in events] == [
        ("2", "20", 100.0),
        ("1", "30", 200.0),
        ("1", "10", 300.0),
    ]
    assert {m.key() for m in messages} == {b"1", b"2"}


def test_demo_json_reports_the_whole_run() -> None:
    """`recstream demo --json` processes every generated event and prints the report keys last."""
    proc = subprocess.run(
        [
            RECSTREAM,
            "demo",
            "--json",
            "--events",
            "4000",
            "--users",
            "300",
            "--items",
            "500",
            "--rate",
            "0",
        ],
        env=_env(),
        capture_output=True,
        timeout=150,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    report = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    for key in (
        "events",
        "users_published",
        "dlq",
        "events_per_s",
        "latency_ms_p50",
        "latency_ms_p99",
    ):
        assert key in report
    assert report["events"] == 4000
    assert report["dlq"] == report["malformed_sent"] > 0
    assert report["users_published"] == report["users_clicked"]
    assert report["committed_to_end"] is True


def test_demo_on_a_given_redis_writes_only_keys_of_its_own(
    kafka_server: Any, redis_server: Any, redis_client: Any
) -> None:
    """`recstream demo --redis URL` leaves the global cold-start key and every other key alone."""
    redis_client.set("recstream:cold_start", b"the deployment's list", ex=600)
    before = set(redis_client.keys("*"))
    proc = subprocess.run(
        [
            RECSTREAM,
            "demo",
            "--json",
            "--events",
            "500",
            "--users",
            "50",
            "--items",
            "100",
            "--rate",
            "0",
            "--kafka",
            kafka_server.bootstrap,
            "--redis",
            redis_server.url,
        ],
        env=_env(),
        capture_output=True,
        timeout=150,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    assert redis_client.get("recstream:cold_start") == b"the deployment's list"
    written = {key.decode() for key in set(redis_client.keys("*")) - before}
    assert written, "the demo wrote nothing"
    # recstream-demo-<unix seconds>-<6 hex>: two demos in one second write apart
    own = re.compile(r"recstream-demo-[0-9]+-[0-9a-f]{6}[:.]")
    assert all(own.match(key) for key in written), sorted(written)[:5]
    assert any(key.endswith(".cold_start") for key in written)
