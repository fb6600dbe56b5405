"""Checkpoint faults on real servers: a bad directory, a refusing disk, killed writes, rot."""

from __future__ import annotations

import resource
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import torch
from fault_helpers import RECSTREAM, RunningWorker, click_messages, click_stream, wait_until

from models.history import SeenHistory
from models.learner import LearnerConfig, OnlineLearner
from worker.storage.checkpoint_dir import SET_ASIDE
from worker.storage.checkpoint_files import load_latest, save
from worker.testing.embedded import free_port

CPU = torch.device("cpu")


def _metric(port: int, name: str) -> float:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not served")


def _a_checkpoint(directory: Path) -> Path:
    """A small real checkpoint, as a worker writes one; returns its manifest."""
    learner = OnlineLearner(LearnerConfig(dim=16, negatives=16, seed=1), CPU, SeenHistory(8, CPU))
    users = torch.from_numpy(learner.users.rows_for([f"u{n}" for n in range(10)]))
    items = torch.from_numpy(learner.items.rows_for([f"i{n}" for n in range(10)]))
    learner.learn(users, items, torch.ones(10), click_ts=torch.arange(10, dtype=torch.float64))
    return save(directory, learner, {})


@pytest.mark.parametrize("case", ["empty", "a file", "under a file"])
def test_a_checkpoint_dir_that_cannot_hold_checkpoints_stops_the_start_naming_it(
    worker_env: Any, tmp_path: Path, case: str
) -> None:
    """An empty value, a file in place of the directory, or a path under a file: exit 2, named."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file\n")
    value = {"empty": "", "a file": str(blocker), "under a file": str(blocker / "checkpoints")}
    env = worker_env(RECSTREAM_CHECKPOINT_DIR=value[case])
    proc = subprocess.run(
        [RECSTREAM, "run"], env=env, cwd=tmp_path, capture_output=True, timeout=120, check=False
    )
    output = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == 2, output[-2000:]
    assert "RECSTREAM_CHECKPOINT_DIR" in output
    assert blocker.read_text() == "a file\n"
    assert list(tmp_path.iterdir()) == [blocker]


def test_a_disk_that_refuses_checkpoints_is_logged_counted_and_retried_while_the_loop_goes_on(
    worker_env: Any, names: Any, produce: Any, committed: Any, tmp_path: Path
) -> None:
    """Writes fail mid-file (a file-size limit, as a full disk fails them): the loop goes on.

    Each failure is logged and counted, leaves no temporary behind, and is
    tried again at the next interval; once the disk takes writes again, the
    next interval writes a checkpoint.
    """
    directory, port = tmp_path / "checkpoints", free_port()
    env = worker_env(
        RECSTREAM_CHECKPOINT_DIR=str(directory),
        RECSTREAM_CHECKPOINT_INTERVAL_S="0.5",
        RECSTREAM_METRICS_PORT=str(port),
    )
    worker = RunningWorker(env)
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # Before the worker writes anything: files over 64 KiB fail with EFBIG (Python ignores SIGXFSZ).
    resource.prlimit(worker.process.pid, resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        clicks = click_stream(0, 2000)
        produce(names.topic, click_messages(clicks))
        assert wait_until(
            lambda: sum(committed(names.group, names.topic).values()) == len(clicks), 90
        ), worker.tail()
        assert worker.wait_for("checkpoint_failed", 3, timeout_s=30), worker.tail()
        assert worker.process.poll() is None
        assert worker.events("checkpoint_written") == []
        assert _metric(port, "recstream_checkpoint_failures_total") >= 3
        assert list(directory.iterdir()) == []  # no temporary, no orphan tensor file
        failures = worker.events("checkpoint_failed")
        assert all("File too large" in entry["error"] for entry in failures)
        resource.prlimit(worker.process.pid, resource.RLIMIT_FSIZE, (hard, hard))
        assert worker.wait_for("checkpoint_written", 1, timeout_s=30), worker.tail()
    finally:
        code = worker.stop()
    assert code == 0, worker.tail()
    restored = load_latest(directory, CPU)
    assert restored is not None
    assert sum(restored.offsets.values()) == len(clicks)


def test_what_a_killed_checkpoint_write_leaves_is_removed_at_start(
    worker_env: Any, tmp_path: Path
) -> None:
    """Temporaries and a manifest-less tensor file go at start; the good checkpoint is restored."""
    directory = tmp_path / "checkpoints"
    good = _a_checkpoint(directory)
    stale = [
        directory / "ckpt-1700000000000000000.safetensors.tmp",  # killed while writing tensors
        directory / "ckpt-1700000000000000001.json.tmp",  # killed while writing the manifest
        directory / "ckpt-1700000000000000002.safetensors",  # killed before the manifest
    ]
    for path in stale:
        path.write_bytes(b"\0" * 1_000_000)
    worker = RunningWorker(
        worker_env(RECSTREAM_CHECKPOINT_DIR=str(directory), RECSTREAM_CHECKPOINT_INTERVAL_S="1e9")
    )
    try:
        assert worker.wait_for("worker_started", timeout_s=90), worker.tail()
    finally:
        code = worker.stop()
    assert code == 0, worker.tail()
    assert not any(path.exists() for path in stale)
    [removed] = worker.events("checkpoint_leftovers_removed")
    assert sorted(removed["files"]) == sorted(path.name for path in stale)
    [restored] = worker.events("checkpoint_restored")
    assert restored["path"] == str(good)


def test_all_checkpoints_corrupt_is_loud_and_the_corrupt_files_are_kept(
    worker_env: Any, names: Any, produce: Any, committed: Any, tmp_path: Path
) -> None:
    """Each corrupt file is logged, none-valid warned, the files moved aside, not rotated out."""
    directory = tmp_path / "checkpoints"
    truncated, garbled = _a_checkpoint(directory), _a_checkpoint(directory)
    tensors = truncated.with_suffix(".safetensors")
    tensors.write_bytes(tensors.read_bytes()[:100])
    garbled.write_text("{not json")
    corrupt = sorted(p.name for p in directory.iterdir())
    worker = RunningWorker(
        worker_env(RECSTREAM_CHECKPOINT_DIR=str(directory), RECSTREAM_CHECKPOINT_INTERVAL_S="0.2")
    )
    try:
        for burst in range(5):  # more checkpoints than the three the rotation keeps
            produce(names.topic, click_messages(click_stream(burst * 100, 100)))
            assert worker.wait_for("checkpoint_written", burst + 1, timeout_s=90), worker.tail()
        # a checkpoint may be written mid-burst: wait for the commit, not the checkpoint count
        done = wait_until(lambda: sum(committed(names.group, names.topic).values()) == 500, 90)
        assert done, worker.tail()
    finally:
        code = worker.stop()
    assert code == 0, worker.tail()
    skipped = worker.events("checkpoint_skipped")
    assert sorted(entry["file"] for entry in skipped) == sorted([truncated.name, garbled.name])
    assert all(entry["level"] == "error" for entry in skipped)
    [none_valid] = worker.events("checkpoint_none_valid")
    assert none_valid["level"] == "warning"
    assert worker.events("checkpoint_restored") == []
    assert sorted(p.name for p in (directory / SET_ASIDE).iterdir()) == corrupt
    assert tensors.name not in {p.name for p in directory.iterdir()}
    assert len(list(directory.glob("ckpt-*.json"))) == 3  # the rotation holds only new ones
