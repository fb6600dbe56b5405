"""Scale-out off, two workers in one group: each says so (log, gauge, /readyz) until alone."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest
from fault_helpers import RunningWorker, wait_until

from worker.testing.embedded import free_port


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310  (loopback)
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def _gauge(port: int) -> float | None:
    for line in _get(f"http://127.0.0.1:{port}/metrics")[1].splitlines():
        if line.startswith("recstream_scale_out_off_with_peers "):
            return float(line.split()[1])
    return None


def _assigned(worker: RunningWorker) -> list[int]:
    """What the worker held at its last assignment (cooperative: `partitions` are the added)."""
    entries = worker.events("partitions_assigned")
    return list(entries[-1]["held"]) if entries else []


@pytest.mark.timeout(420)  # two starts and three rebalances, each waited for, on a busy machine
def test_two_workers_without_scale_out_in_one_group_each_warn_until_alone_again(
    worker_env: Any, group_stable: Any, names: Any
) -> None:
    """Each of two logs scale_out_off_with_peers, gauges 1, names it in /readyz; alone: clear."""
    ports = [free_port(), free_port()]
    envs = [
        worker_env(RECSTREAM_KAFKA_TOPIC_PARTITIONS="2", RECSTREAM_METRICS_PORT=str(port))
        for port in ports
    ]
    a = RunningWorker(envs[0])
    b: RunningWorker | None = None
    try:
        assert wait_until(lambda: len(_assigned(a)) == 2, 120), a.tail()
        assert a.events("scale_out_off_with_peers") == []  # alone: nothing to say
        assert wait_until(lambda: _gauge(ports[0]) == 0.0, 60)
        b = RunningWorker(envs[1])
        assert b.wait_for("scale_out_off_with_peers", timeout_s=120), b.tail()
        assert a.wait_for("scale_out_off_with_peers", timeout_s=120), a.tail()
        [warned] = a.events("scale_out_off_with_peers")[-1:]
        assert warned["variable"] == "RECSTREAM_SCALE_OUT"
        assert warned["partitions"] == 2
        assert warned["assigned"] < 2 or warned["members"] == 2
        for port in ports:
            assert wait_until(lambda port=port: _gauge(port) == 1.0, 60)
            status, body = _get(f"http://127.0.0.1:{port}/readyz")
            assert "scale_out_off_with_peers" in body, (status, body)
        assert group_stable(names.group, 60)  # b's join went through: its leave cannot wedge it
        assert b.stop() == 0
        b = None
        # Alone again: the next rebalance gives a both partitions and clears the warning.
        assert wait_until(lambda: len(_assigned(a)) == 2 and _gauge(ports[0]) == 0.0, 120), a.tail()
        status, body = _get(f"http://127.0.0.1:{ports[0]}/readyz")
        assert "scale_out_off_with_peers" not in body, (status, body)
    finally:
        codes = [w.stop() for w in (a, b) if w is not None]
    assert all(code == 0 for code in codes)
