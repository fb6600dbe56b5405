"""Every metric the Grafana dashboard queries is one a running `recstream run` exports."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import msgpack
import torch
from fault_helpers import wait_until
from prometheus_client.parser import text_string_to_metric_families

from worker.observability.metrics import GPU_METRICS
from worker.testing.embedded import free_port
from worker.tools.dashboard import queried_metrics

RECSTREAM = str(Path(sys.executable).parent / "recstream")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _exported(url: str) -> set[str]:
    """Sample names on /metrics, plus those of families declared with no sample yet.

    A labelled counter (evictions by kind and cause) has no sample until its first
    increment, but its HELP and TYPE lines are there: Prometheus will have it then.
    """
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  (loopback)
        families = list(text_string_to_metric_families(response.read().decode()))
    names = {sample.name for family in families for sample in family.samples}
    for family in families:
        names |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ())}
    return names


def test_every_panel_queries_an_exported_metric(
    worker_env: Any, names: Any, produce: Any, committed: Any, tmp_path: Path
) -> None:
    """A live /metrics, after clicks, a reject and a checkpoint, names every metric a panel uses."""
    port = free_port()
    env = worker_env(
        RECSTREAM_METRICS_PORT=str(port),
        RECSTREAM_CHECKPOINT_DIR=str(tmp_path),
        RECSTREAM_CHECKPOINT_INTERVAL_S="1",
    )
    proc = subprocess.Popen(
        [RECSTREAM, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        clicks = [
            (f"u{n % 20}".encode(), msgpack.packb({"user": f"u{n % 20}", "item": f"i{n % 30}"}))
            for n in range(300)
        ]
        sent = produce(names.topic, [*clicks, (b"bad", b"\xff")])
        queried = queried_metrics()
        gpu_only = set(GPU_METRICS) if not torch.cuda.is_available() else set()
        exported: set[str] = set()

        def all_exported() -> bool:
            # After every message is committed and a checkpoint was written (its interval
            # is 1 s): each metric a panel queries then has a sample or a declared family.
            nonlocal exported
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            if sum(committed(names.group, names.topic).values()) < sent.count:
                return False  # the port may not even be bound yet
            exported = _exported(f"http://127.0.0.1:{port}/metrics")
            return not queried - gpu_only - exported

        wait_until(all_exported, 120, every_s=0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert gpu_only <= queried, "the GPU memory panel is missing"
    assert sum(committed(names.group, names.topic).values()) == sent.count
    missing = sorted(queried - gpu_only - exported)
    assert not missing, f"panels query metrics the worker does not export: {missing}"
