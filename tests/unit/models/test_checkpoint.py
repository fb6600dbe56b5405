"""Checkpoints restore exactly what was saved, and corrupt ones are skipped, never loaded."""

from __future__ import annotations

from pathlib import Path

import torch

from models import LearnerConfig, OnlineLearner, SeenHistory
from models.checkpoint import load_latest, save

CPU = torch.device("cpu")


def _trained(users: int = 30, items: int = 50) -> tuple[OnlineLearner, SeenHistory]:
    learner = OnlineLearner(LearnerConfig(dim=8, negatives=16, seed=3), CPU)
    history = SeenHistory(6, CPU)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        u = learner.users.rows_for([f"u{x}" for x in torch.randint(0, users, (64,), generator=gen)])
        i = learner.items.rows_for([f"i{x}" for x in torch.randint(0, items, (64,), generator=gen)])
        ut, it = torch.from_numpy(u), torch.from_numpy(i)
        learner.learn(ut, it, torch.ones(64))
        history.add(ut, it, torch.rand(64, generator=gen) * 100)
    return learner, history


def test_round_trip_restores_tables_ids_history_and_offsets(tmp_path: Path) -> None:
    """Every tensor, id and offset comes back equal."""
    learner, history = _trained()
    offsets = {("clicks", 0): 17, ("clicks", 3): 5}
    save(tmp_path, learner, history, offsets)
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    assert restored.skipped == []
    assert restored.offsets == offsets
    assert restored.learner.users.ids() == learner.users.ids()
    assert restored.learner.items.ids() == learner.items.ids()
    assert torch.equal(restored.learner.item_vectors(), learner.item_vectors())
    rows = torch.arange(len(learner.users))
    assert torch.equal(restored.learner.user_vectors(rows), learner.user_vectors(rows))
    assert torch.equal(restored.history.seen(rows), history.seen(rows))
    assert torch.equal(restored.learner.context_table.view(), learner.context_table.view())
    assert torch.equal(restored.learner.recent.seen(rows), learner.recent.seen(rows))
    assert torch.equal(restored.history.last_ts[rows], history.last_ts[rows])
    assert restored.learner.steps == learner.steps


def test_a_corrupt_newest_checkpoint_is_skipped_for_the_previous_one(tmp_path: Path) -> None:
    """A truncated tensor file or a broken manifest is reported and the older good one loads."""
    learner, history = _trained()
    good = save(tmp_path, learner, history, {("clicks", 0): 1})
    bad = save(tmp_path, learner, history, {("clicks", 0): 2})
    tensors = tmp_path / bad.name.replace(".json", ".safetensors")
    tensors.write_bytes(tensors.read_bytes()[:100])
    worse = save(tmp_path, learner, history, {("clicks", 0): 3})
    worse.write_text("{not json")
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    assert restored.path == good
    assert restored.offsets == {("clicks", 0): 1}
    reasons = dict(restored.skipped)
    assert set(reasons) == {bad.name, worse.name}
    assert "checksum" in reasons[bad.name]


def test_no_checkpoint_means_none_and_old_ones_are_pruned(tmp_path: Path) -> None:
    """An empty directory loads nothing, and only the newest three checkpoints are kept."""
    assert load_latest(tmp_path, CPU) is None
    learner, history = _trained()
    for n in range(5):
        save(tmp_path, learner, history, {("clicks", 0): n})
    assert len(list(tmp_path.glob("ckpt-*.json"))) == 3
    assert len(list(tmp_path.glob("ckpt-*.safetensors"))) == 3
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    assert restored.offsets == {("clicks", 0): 4}
