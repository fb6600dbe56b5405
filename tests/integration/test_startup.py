"""A bad start is one structured `startup_failed` line and exit 2; a late topic is waited for.

Issue 10, item 6 (broker unreachable, input topic missing) and item 7 (settings and
dependencies that were accepted at start and broke at run time), against `recstream run`.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from fault_helpers import RECSTREAM, click_messages, click_stream, log_events, wait_until

from worker.testing.embedded import free_port


def _run_to_exit(env: dict[str, str], log: Path, timeout_s: float = 60) -> int:
    with log.open("w") as out:
        proc = subprocess.run(
            [RECSTREAM, "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
            check=False,
        )
    return proc.returncode


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310  (loopback)
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


@pytest.mark.parametrize("create_topics", ["true", "false"])
def test_an_unreachable_broker_is_a_startup_failure_naming_it(
    worker_env: Any, tmp_path: Path, create_topics: str
) -> None:
    """No broker: after RECSTREAM_STARTUP_TIMEOUT_S, `startup_failed` names the servers; exit 2."""
    bootstrap = f"127.0.0.1:{free_port()}"
    env = worker_env(
        RECSTREAM_KAFKA_BOOTSTRAP=bootstrap,
        RECSTREAM_KAFKA_CREATE_TOPICS=create_topics,
        RECSTREAM_STARTUP_TIMEOUT_S="2",
    )
    log = tmp_path / "worker.log"
    code = _run_to_exit(env, log, timeout_s=120)  # it exits on its own: no wall-clock target
    assert code == 2, log.read_text()[-2000:]
    failed = log_events(log, "startup_failed")
    assert len(failed) == 1, log.read_text()[-2000:]
    assert failed[0]["waited_s"] == 2  # it gave up after the timeout it was given
    assert failed[0]["bootstrap_servers"] == bootstrap
    assert failed[0]["variable"] == "RECSTREAM_KAFKA_BOOTSTRAP"
    assert "Traceback" not in log.read_text()
    # librdkafka's own lines (connection refused) came through structlog, not as plain text
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert len(log_events(log)) == len(lines), lines[:5]
    refused = log_events(log, "kafka_client_log")
    assert refused, lines[:5]
    assert all(e["facility"] and e["client"].startswith("rdkafka#") for e in refused)


@pytest.mark.timeout(420)  # each wait below is bounded; a busy machine may need several
def test_a_missing_input_topic_is_waited_for_and_consumed_once_created(
    worker_env: Any,
    names: Any,
    kafka_server: Any,
    produce: Any,
    committed: Any,
    tmp_path: Path,
) -> None:
    """Without topic creation, a missing topic is warned of, then consumed soon after it appears."""
    from confluent_kafka.admin import AdminClient, NewTopic

    port = free_port()
    admin = AdminClient({"bootstrap.servers": kafka_server.bootstrap})

    def create(*topics: str) -> None:
        futures = admin.create_topics(
            [NewTopic(t, num_partitions=2, replication_factor=-1) for t in topics]
        )
        for future in futures.values():
            future.result(30)

    create(names.dlq_topic)  # a missing DLQ topic is a failed start (the next test)
    env = worker_env(RECSTREAM_KAFKA_CREATE_TOPICS="false", RECSTREAM_METRICS_PORT=str(port))
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen([RECSTREAM, "run"], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            waiting = wait_until(  # periodic: a second warning, 10 s after the first
                lambda: sum(bool(e.get("waiting")) for e in log_events(log, "topic_missing")) >= 2,
                120,
            )
            assert waiting, log.read_text()[-3000:]
            assert proc.poll() is None
            assert _status(f"http://127.0.0.1:{port}/readyz") == 503
            create(names.topic)
            sent = produce(names.topic, click_messages(click_stream(0, 200)))
            # Within half of librdkafka's default metadata refresh (5 minutes), which is what
            # this tells apart: the worker's 5 s refresh, with room for a busy machine.
            consumed = wait_until(
                lambda: sum(committed(names.group, names.topic).values()) == sent.count, 150
            )
            assert consumed, log.read_text()[-3000:]
            assert wait_until(lambda: _status(f"http://127.0.0.1:{port}/readyz") == 200, 60)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
    assert code == 0
    start = log_events(log, "topic_missing")
    assert {e["role"] for e in start} == {"input"}
    assert start[0]["bootstrap_servers"] == kafka_server.bootstrap


def test_a_missing_dead_letter_topic_without_topic_creation_is_a_startup_failure(
    worker_env: Any, names: Any, kafka_server: Any, tmp_path: Path
) -> None:
    """No DLQ topic and no topic creation: exit 2 at start naming RECSTREAM_KAFKA_DLQ_TOPIC.

    A worker that started would fail the first bad event's dead letter, and every
    commit behind it; the input topic alone may still be waited for.
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_server.bootstrap})
    futures = admin.create_topics([NewTopic(names.topic, num_partitions=2, replication_factor=-1)])
    for future in futures.values():
        future.result(30)
    env = worker_env(RECSTREAM_KAFKA_CREATE_TOPICS="false")
    log = tmp_path / "worker.log"
    assert _run_to_exit(env, log, timeout_s=120) == 2, log.read_text()[-2000:]
    failed = log_events(log, "startup_failed")
    assert [(e["variable"], e["topic"]) for e in failed] == [
        ("RECSTREAM_KAFKA_DLQ_TOPIC", names.dlq_topic)
    ]
    assert "Traceback" not in log.read_text()


def test_a_metrics_port_in_use_is_a_startup_failure(worker_env: Any, tmp_path: Path) -> None:
    """A metrics port that another process holds: `startup_failed` naming the variable, exit 2."""
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))  # noqa: S104  (the worker binds every interface)
        holder.listen()
        port = holder.getsockname()[1]
        log = tmp_path / "worker.log"
        code = _run_to_exit(worker_env(RECSTREAM_METRICS_PORT=str(port)), log)
    assert code == 2, log.read_text()[-2000:]
    failed = log_events(log, "startup_failed")
    assert [e["variable"] for e in failed] == ["RECSTREAM_METRICS_PORT"]
    assert "Traceback" not in log.read_text()


def test_a_redis_database_out_of_range_is_a_startup_failure(
    worker_env: Any, redis_server: Any, tmp_path: Path
) -> None:
    """A database index Redis lacks: refused at start, naming RECSTREAM_REDIS_URL, exit 2."""
    env = worker_env(RECSTREAM_REDIS_URL=f"redis://127.0.0.1:{redis_server.port}/999")
    log = tmp_path / "worker.log"
    assert _run_to_exit(env, log) == 2, log.read_text()[-2000:]
    failed = log_events(log, "startup_failed")
    assert len(failed) == 1
    assert failed[0]["variable"] == "RECSTREAM_REDIS_URL"
    assert failed[0]["redis"] == f"127.0.0.1:{redis_server.port}/999"
    assert "out of range" in str(failed[0]["error"])


def test_an_unreachable_redis_is_a_startup_failure_after_the_wait(
    worker_env: Any, tmp_path: Path
) -> None:
    """Nothing listening at the Redis URL: exit 2 after RECSTREAM_STARTUP_TIMEOUT_S, named."""
    port = free_port()
    env = worker_env(
        RECSTREAM_REDIS_URL=f"redis://127.0.0.1:{port}/0", RECSTREAM_STARTUP_TIMEOUT_S="2"
    )
    log = tmp_path / "worker.log"
    assert _run_to_exit(env, log) == 2, log.read_text()[-2000:]
    failed = log_events(log, "startup_failed")
    assert [(e["variable"], e["redis"]) for e in failed] == [
        ("RECSTREAM_REDIS_URL", f"127.0.0.1:{port}/0")
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECSTREAM_L2", "inf"),
        ("RECSTREAM_REDIS_TIMEOUT_S", "inf"),
        ("RECSTREAM_SEED", str(2**70)),
        ("RECSTREAM_KAFKA_SESSION_TIMEOUT_MS", "99999999"),
        ("RECSTREAM_KAFKA_FETCH_WAIT_MAX_MS", "999999"),
        ("RECSTREAM_REDIS_URL", "redis://127.0.0.1:notaport/0"),
        ("RECSTREAM_REDIS_URL", "redis://127.0.0.1:6379/notadb"),
        ("RECSTREAM_EVENT_WEIGHTS", '{"click": "x"}'),
        ("RECSTREAM_REDIS_PREFIX", ""),
        ("RECSTREAM_REDIS_COLD_START_KEY", "rec:cold"),
        ("RECSTREAM_KAFKA_TOPIC", "."),
        ("RECSTREAM_KAFKA_DLQ_TOPIC", ".."),
    ],
)
def test_settings_that_broke_at_run_time_are_refused_at_start(
    worker_env: Any, name: str, value: str
) -> None:
    """Each value once accepted and broken later now exits 2 at start, naming its variable."""
    env = worker_env(**{name: value})
    if name == "RECSTREAM_REDIS_COLD_START_KEY":
        env["RECSTREAM_REDIS_PREFIX"] = "rec:"
    proc = subprocess.run([RECSTREAM, "run"], env=env, capture_output=True, timeout=60, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err[-2000:]
    assert f"{name}:" in err or f"{name} must" in err, err
    assert "Traceback" not in err
    assert "RECSTREAM_EVENT_WEIGHTS_CLICK" not in err


def _local_case(case: str, tmp_path: Path) -> tuple[str, str]:
    if case == "checkpoint_dir_a_file":
        a_file = tmp_path / "passwd"
        a_file.write_text("root:x:0:0::/root:/bin/sh\n")
        return "RECSTREAM_CHECKPOINT_DIR", str(a_file)
    if case == "ca_file_missing":
        return "RECSTREAM_KAFKA_SSL_CA_LOCATION", str(tmp_path / "no-such-ca.pem")
    return "RECSTREAM_DEVICE", "cuda"


@pytest.mark.parametrize("case", ["checkpoint_dir_a_file", "ca_file_missing", "cuda_without_gpu"])
def test_local_settings_are_checked_before_waiting_for_the_broker(
    worker_env: Any, tmp_path: Path, case: str
) -> None:
    """A bad local setting fails the start at once, named, while no broker answers.

    The broker wait is an hour here: the start reaches its exit only if the local
    check came first. One `startup_failed` line naming the variable, no traceback.
    """
    import torch

    if case == "cuda_without_gpu" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    variable, value = _local_case(case, tmp_path)
    env = worker_env(
        RECSTREAM_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
        RECSTREAM_STARTUP_TIMEOUT_S="3600",
        **{variable: value},
    )
    log = tmp_path / "worker.log"
    assert _run_to_exit(env, log, timeout_s=150) == 2, log.read_text()[-2000:]
    failed = log_events(log, "startup_failed")
    assert [e["variable"] for e in failed] == [variable], log.read_text()[-2000:]
    assert "Traceback" not in log.read_text()
    assert not log_events(log, "kafka_client_log")  # no broker was asked
