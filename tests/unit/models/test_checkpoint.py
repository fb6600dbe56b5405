"""A checkpoint's contents, in memory: a snapshot splits into tensors and a manifest and back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from models.checkpoint import FORMAT, Snapshot, readable, restore, snapshot
from models.errors import CheckpointError
from models.history import SeenHistory
from models.learner import LearnerConfig, OnlineLearner

CPU = torch.device("cpu")
SOURCE = Path("ckpt-1.json")  # a label only: nothing is read or written


def _taken() -> tuple[OnlineLearner, SeenHistory, Snapshot]:
    history = SeenHistory(4, CPU)
    learner = OnlineLearner(LearnerConfig(dim=8, negatives=4, seed=1), CPU, history)
    users = torch.from_numpy(learner.users.rows_for(["u1", "u2", "u1"]))
    items = torch.from_numpy(learner.items.rows_for(["i1", "i2", "i3"]))
    learner.learn(users, items, torch.ones(3), click_ts=torch.tensor([1.0, 2.0, 3.0]))
    return learner, history, snapshot(learner, {("clicks", 1): 9})


def test_a_snapshot_split_and_restored_gives_the_same_parts() -> None:
    """Tensors and manifest of a snapshot restore the learner, history and offsets as they were."""
    learner, history, taken = _taken()
    manifest = taken.manifest("ckpt-1.safetensors", "0" * 64)
    assert manifest["format"] == FORMAT
    restored = restore(manifest, taken.tensors(), CPU, SOURCE)
    assert restored.path == SOURCE
    assert restored.offsets == {("clicks", 1): 9}
    assert restored.learner.users.ids() == learner.users.ids()
    assert torch.equal(restored.learner.item_vectors(), learner.item_vectors())
    rows = torch.arange(len(learner.users))
    assert torch.equal(restored.learner.history.seen(rows), history.seen(rows))
    assert torch.equal(restored.learner.history.last_ts[rows], history.last_ts[rows])
    assert not any(name.startswith("learner.recent.") for name in taken.state)  # stored once
    assert torch.allclose(restored.learner.user_vectors(rows), learner.user_vectors(rows))


def test_a_checkpoint_that_still_holds_the_learners_own_ring_loads_and_ignores_it() -> None:
    """A format-6 checkpoint written with `learner.recent.` loads; the query reads the history."""
    learner, history, taken = _taken()
    garbage = torch.full((2, 16), 2, dtype=torch.int64)  # unlike the history: must go unread
    older = dataclasses.replace(
        taken,
        state={
            **taken.state,
            "learner.recent.items": garbage,
            "learner.recent.written": torch.full((2,), 16, dtype=torch.int64),
            "learner.recent.last_ts": torch.zeros(2, dtype=torch.float64),
        },
    )
    manifest = older.manifest("ckpt-1.safetensors", "0" * 64)
    restored = restore(manifest, older.tensors(), CPU, SOURCE)
    assert not hasattr(restored.learner, "recent")
    rows = torch.arange(len(learner.users))
    assert torch.equal(restored.learner.history.seen(rows), history.seen(rows))
    assert torch.allclose(restored.learner.user_vectors(rows), learner.user_vectors(rows))


def test_a_future_format_is_refused_before_its_tensors_are_needed() -> None:
    """`readable` names the formats this version reads; a non-object manifest is refused too."""
    with pytest.raises(CheckpointError, match=f"reads 1 to {FORMAT}"):
        readable({"format": FORMAT + 1})
    with pytest.raises(CheckpointError, match="not a JSON object"):
        readable([1, 2])


def test_tensors_that_disagree_with_the_manifest_are_refused() -> None:
    """A tensor of another shape, or a state name that is missing, is a `CheckpointError`."""
    _, _, taken = _taken()
    manifest = taken.manifest("ckpt-1.safetensors", "0" * 64)
    tensors = taken.tensors()
    name = next(n for n, t in tensors.items() if t.dim() and t.shape[0])
    with pytest.raises(CheckpointError, match="shapes do not match"):
        restore(manifest, {**tensors, name: tensors[name][:0]}, CPU, SOURCE)
    state = manifest["state"]
    assert isinstance(state, dict)
    state.pop("learner.items.ids")
    with pytest.raises(CheckpointError, match="does not fit"):
        restore(manifest, tensors, CPU, SOURCE)
