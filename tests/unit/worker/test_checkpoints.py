"""Unit tests for `worker.storage.checkpoints.Checkpointer`: snapshots taken here, written apart."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import worker.storage.checkpoints
from index.exact import ExactIndex
from models.checkpoint import Snapshot
from models.history import SeenHistory
from models.learner import LearnerConfig, OnlineLearner
from worker.engine.engine import Engine
from worker.observability.metrics import WorkerMetrics
from worker.storage.checkpoint_files import load_latest, write_snapshot
from worker.storage.checkpoints import Checkpointer

CPU = torch.device("cpu")


def _engine() -> Engine:
    learner = OnlineLearner(LearnerConfig(dim=8, negatives=4, seed=0), CPU, SeenHistory(16, CPU))
    return Engine(learner, ExactIndex(), 3)


def _learn(engine: Engine, users: list[str], items: list[str]) -> None:
    n = len(users)
    engine.learn(users, items, np.arange(n, dtype=np.float64), np.ones(n, dtype=np.float32))


def test_the_write_runs_in_the_background_and_holds_the_state_at_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Learning goes on during a write; the checkpoint holds the model as it was snapshotted."""
    release, started = threading.Event(), threading.Event()

    def held_write(directory: Path, snapshot: Snapshot) -> Path:
        started.set()
        assert release.wait(10)
        return write_snapshot(directory, snapshot)

    monkeypatch.setattr(worker.storage.checkpoints, "write_snapshot", held_write)
    engine = _engine()
    _learn(engine, ["a", "b"], ["x", "y"])
    at_snapshot = engine.learner.item_vectors().clone()
    checkpointer = Checkpointer(tmp_path, interval_s=0.0, metrics=WorkerMetrics())
    checkpointer.unsaved = True
    assert checkpointer.due()
    checkpointer.start(engine, {("clicks", 0): 2})
    assert started.wait(10)
    _learn(engine, ["a", "c"], ["x", "z"])  # the loop goes on while the write is held
    checkpointer.unsaved = True
    assert checkpointer.writing
    assert not checkpointer.due()  # one write at a time: the next waits for this one
    release.set()
    checkpointer.wait()
    checkpointer.close()
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    assert restored.offsets == {("clicks", 0): 2}
    assert restored.learner.users.ids() == ["a", "b"]
    assert torch.equal(restored.learner.item_vectors(), at_snapshot)
    assert checkpointer.due()


def test_a_refused_background_write_is_counted_and_left_unsaved_for_the_next_interval(
    tmp_path: Path,
) -> None:
    """A directory that is a file: the write fails on its thread, counted; nothing is lost."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    metrics = WorkerMetrics()
    checkpointer = Checkpointer(blocker, interval_s=0.0, metrics=metrics)
    engine = _engine()
    _learn(engine, ["a"], ["x"])
    checkpointer.unsaved = True
    checkpointer.start(engine, {})
    checkpointer.wait()
    assert metrics.checkpoint_failures._value.get() == 1
    assert checkpointer.unsaved
    assert checkpointer.write(engine, {}) is None  # the synchronous one fails the same way
    assert metrics.checkpoint_failures._value.get() == 2
    checkpointer.close()
