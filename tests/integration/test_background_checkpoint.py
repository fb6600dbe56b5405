"""Checkpoints written in the background while the loop goes on, each true to its offsets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import pytest
import torch
from fault_helpers import wait_until

import worker.storage.checkpoints
from models.checkpoint import Snapshot
from worker.app import build_worker
from worker.storage import checkpoint_files
from worker.storage.checkpoint_files import write_snapshot

_EVENTS = 3000


def _one_user_per_event(start: int, count: int) -> list[tuple[bytes, bytes]]:
    """Event n is user u{n}'s only click: the users a model holds say which events it learned."""
    return [
        (f"u{n}".encode(), msgpack.packb({"user": f"u{n}", "item": f"i{n % 50}", "ts": float(n)}))
        for n in range(start, start + count)
    ]


@pytest.mark.parametrize("overlap", [False, True])
def test_a_checkpoint_written_during_batches_holds_exactly_the_events_of_its_offsets(
    make_settings: Any,
    names: Any,
    produce: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    overlap: bool,
) -> None:
    """Slow background writes: batches go on meanwhile, and every checkpoint matches its offsets.

    A worker restored from the newest one re-reads exactly the events after
    its offsets, so nothing is skipped and nothing learned twice.
    """
    settings = make_settings(
        checkpoint_dir=tmp_path,
        checkpoint_interval_s=0.05,
        batch_size=40,
        batch_max=40,
        batch_ms=20,
    )
    first = build_worker(settings)
    first.overlap = overlap
    progress: list[tuple[int, int]] = []  # batches finished when each write began and ended

    def slow_write(directory: Path, snapshot: Snapshot) -> Path:
        # A disk that takes as long as the loop needs for two more batches (or to finish):
        # if the loop waited for the write, this would wait for nothing and time out.
        before = first.totals.batches
        wait_until(
            lambda: first.totals.batches >= before + 2 or first.totals.messages >= _EVENTS,
            60,
            every_s=0.005,
        )
        path = write_snapshot(directory, snapshot)
        progress.append((before, first.totals.batches))
        return path

    monkeypatch.setattr(worker.storage.checkpoints, "write_snapshot", slow_write)
    produce(names.topic, _one_user_per_event(0, _EVENTS), partition=0)
    try:
        assert first.run_until(lambda w: w.totals.messages >= _EVENTS, timeout_s=120)
        first.checkpointer.wait()  # type: ignore[union-attr]
    finally:
        first.close()  # killed: no final checkpoint
    assert len(progress) >= 2, progress
    assert any(after > before for before, after in progress), "the loop waited for a write"

    manifests = sorted(tmp_path.glob("ckpt-*.json"))
    assert manifests
    resume_at = 0
    for manifest_path in manifests:
        restored = checkpoint_files._load(manifest_path, torch.device("cpu"))
        resume_at = restored.offsets.get((names.topic, 0), 0)
        assert set(restored.offsets) <= {(names.topic, p) for p in range(3)}
        users = set(restored.learner.users.ids())
        assert users == {f"u{n}" for n in range(resume_at)}, manifest_path.name

    monkeypatch.undo()
    produce(names.topic, _one_user_per_event(_EVENTS, 500), partition=0)  # after the crash
    second = build_worker(settings)
    second.overlap = overlap
    assert len(second.learner.users) == resume_at
    total = _EVENTS + 500
    try:
        assert second.run_until(lambda w: w.totals.messages >= total - resume_at, timeout_s=120)
        for _ in range(3):  # nothing before the checkpoint's offsets comes back
            second.step()
    finally:
        second.close()
    assert second.totals.messages == total - resume_at
    assert set(second.learner.users.ids()) == {f"u{n}" for n in range(total)}
