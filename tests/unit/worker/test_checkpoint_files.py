"""Checkpoint files restore exactly what was saved, and corrupt ones are skipped, never loaded."""

from __future__ import annotations

import json
import resource
from pathlib import Path

import numpy as np
import pytest
import torch
from old_formats import downgrade, write_format_5

from models.checkpoint import snapshot
from models.errors import CheckpointError
from models.history import SeenHistory
from models.learner import LearnerConfig, OnlineLearner
from models.rows import RowLimits, RowPolicy
from models.state import StateDict
from worker.storage.checkpoint_dir import SET_ASIDE, open_directory
from worker.storage.checkpoint_files import load_latest, save, write_snapshot

CPU = torch.device("cpu")


def _trained(users: int = 30, items: int = 50) -> tuple[OnlineLearner, SeenHistory]:
    """A learner after 5 batches, and its seen history (the ring its query reads)."""
    history = SeenHistory(6, CPU)
    learner = OnlineLearner(LearnerConfig(dim=8, negatives=16, seed=3), CPU, history)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        u = learner.users.rows_for([f"u{x}" for x in torch.randint(0, users, (64,), generator=gen)])
        i = learner.items.rows_for([f"i{x}" for x in torch.randint(0, items, (64,), generator=gen)])
        ts = torch.rand(64, generator=gen) * 100
        learner.learn(torch.from_numpy(u), torch.from_numpy(i), torch.ones(64), click_ts=ts)
    return learner, history


def test_round_trip_restores_tables_ids_history_and_offsets(tmp_path: Path) -> None:
    """Every tensor, id and offset comes back equal."""
    learner, history = _trained()
    offsets = {("clicks", 0): 17, ("clicks", 3): 5}
    save(tmp_path, learner, offsets)
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    assert restored.skipped == []
    assert restored.offsets == offsets
    assert restored.learner.users.ids() == learner.users.ids()
    assert restored.learner.items.ids() == learner.items.ids()
    assert torch.equal(restored.learner.item_vectors(), learner.item_vectors())
    rows = torch.arange(len(learner.users))
    assert torch.equal(restored.learner.user_vectors(rows), learner.user_vectors(rows))
    assert torch.equal(restored.learner.history.seen(rows), history.seen(rows))
    assert torch.equal(restored.learner.context_table.view(), learner.context_table.view())
    assert torch.equal(restored.learner.history.last_ts[rows], history.last_ts[rows])
    assert restored.learner.steps == learner.steps


def test_a_corrupt_newest_checkpoint_is_skipped_for_the_previous_one(tmp_path: Path) -> None:
    """A truncated tensor file or a broken manifest is reported and the older good one loads."""
    learner, _ = _trained()
    good = save(tmp_path, learner, {("clicks", 0): 1})
    bad = save(tmp_path, learner, {("clicks", 0): 2})
    tensors = tmp_path / bad.name.replace(".json", ".safetensors")
    tensors.write_bytes(tensors.read_bytes()[:100])
    worse = save(tmp_path, learner, {("clicks", 0): 3})
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
    learner, _ = _trained()
    for n in range(5):
        save(tmp_path, learner, {("clicks", 0): n})
    assert len(list(tmp_path.glob("ckpt-*.json"))) == 3
    assert len(list(tmp_path.glob("ckpt-*.safetensors"))) == 3
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    assert restored.offsets == {("clicks", 0): 4}


def _bounded(learner: OnlineLearner) -> RowPolicy:
    policy = RowPolicy.over(
        learner.users, learner.items, RowLimits(30, ttl_s=40.0), RowLimits(50, min_occurrences=2)
    )
    policy.users.admit([f"u{n}" for n in range(30)], 0.0)
    policy.users.admit([f"u{n}" for n in range(0, 30, 3)], 100.0)
    policy.users.expire(100.0)  # every user not seen at t=100 becomes a hole
    policy.items.admit(["rare", "rarer", "rare"], 100.0)
    learner.sync_rows()
    return policy


def test_round_trip_keeps_holes_last_sights_and_pending_counts(tmp_path: Path) -> None:
    """Free rows, each row's last sight and the pending occurrence counts come back equal."""
    learner, _ = _trained()
    policy = _bounded(learner)
    assert learner.users.free_count == 20
    save(tmp_path, learner, {("clicks", 0): 9}, policy)
    manifest = json.loads(next(tmp_path.glob("ckpt-*.json")).read_text())
    assert manifest["format"] == 6
    assert manifest["state"]["learner.users.ids"].count(None) == 20
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    again = restored.learner
    assert again.users.ids() == learner.users.ids()
    assert again.items.ids() == learner.items.ids()
    assert again.users.free_count == 20
    rows = restored.rows
    assert np.array_equal(_tensor(rows["users.last_seen"]).numpy(), policy.users.last_seen)
    assert np.array_equal(_tensor(rows["items.last_seen"]).numpy(), policy.items.last_seen)
    assert rows["items.pending.counts"] == [["rarer", 1]]
    rebuilt = RowPolicy.over(
        again.users, again.items, RowLimits(30), RowLimits(50, min_occurrences=2), restored.rows
    )
    assert rebuilt.items.admit(["rarer"], 101.0).rows[0] >= 0  # its second sighting
    new_row = rebuilt.users.admit(["fresh"], 101.0).rows[0]
    assert learner.users.ids()[new_row] is None  # a restored hole is reused


def _tensor(value: object) -> torch.Tensor:
    assert isinstance(value, torch.Tensor)
    return value


def test_a_format_1_checkpoint_still_loads(tmp_path: Path) -> None:
    """A checkpoint written before bounded rows loads with last sights from the seen history."""
    learner, history = _trained()
    downgrade(write_format_5(tmp_path, learner, history, {("clicks", 0): 1}), 1)
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    assert restored.skipped == []
    users = len(learner.users)
    user_seen = _tensor(restored.rows["users.last_seen"])
    assert torch.equal(user_seen, history.last_ts[:users].double())
    assert (_tensor(restored.rows["items.last_seen"]) == history.last_ts[:users].max()).all()


def test_a_format_5_checkpoint_loads_everything_it_held(tmp_path: Path) -> None:
    """A format 5 checkpoint (the flat layout) restores the learner, history and rows as held."""
    learner, history = _trained()
    policy = _bounded(learner)
    write_format_5(tmp_path, learner, history, {("clicks", 2): 7}, policy)
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    assert restored.skipped == []
    assert restored.offsets == {("clicks", 2): 7}
    _assert_same(restored.learner, learner, covisits=False)
    users = learner.users.extent
    assert torch.equal(restored.learner.history.items[:users], history.items[:users])
    assert torch.equal(restored.learner.history.last_ts[:users], history.last_ts[:users])
    assert np.array_equal(_tensor(restored.rows["users.last_seen"]).numpy(), policy.users.last_seen)
    assert restored.rows["items.pending.counts"] == [["rarer", 1]]


def _assert_same(back: OnlineLearner, learner: OnlineLearner, *, covisits: bool = True) -> None:
    """Every learned part of two learners is equal (the random generator aside).

    `covisits=False`: a checkpoint format older than the co-visit table restores it empty.
    """
    assert back.users.ids() == learner.users.ids()
    assert back.items.ids() == learner.items.ids()
    assert back.steps == learner.steps
    mine, theirs = learner.state_dict(), back.state_dict()
    assert mine.keys() == theirs.keys()
    for name, value in mine.items():
        if not covisits and name.startswith("transition.covisit."):
            assert isinstance(value, torch.Tensor)
            assert not (_tensor(theirs[name]) > 0).any(), name  # empty: neighbours -1, counts 0
            continue
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, _tensor(theirs[name])), name
        else:
            assert value == theirs[name], name


def test_an_unknown_format_is_refused_with_a_reason(tmp_path: Path) -> None:
    """A manifest from a future format is skipped, naming the formats this version reads."""
    learner, _ = _trained()
    good = save(tmp_path, learner, {})
    future = save(tmp_path, learner, {})
    manifest = json.loads(future.read_text())
    manifest["format"] = 99
    future.write_text(json.dumps(manifest))
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    assert restored.path == good
    assert "reads 1 to 6" in dict(restored.skipped)[future.name]


def test_round_trip_restores_the_popularity_prior(tmp_path: Path) -> None:
    """The prior's log masses, reference time and clock come back, and learning goes on alike."""
    learner, _ = _trained()
    save(tmp_path, learner, {})
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    rows = learner.item_table.rows
    prior, back = learner.prior, restored.learner.prior
    assert torch.equal(back.log_mass[:rows], prior.log_mass[:rows])
    assert (back.ref, back.clock) == (prior.ref, prior.clock)
    users = torch.from_numpy(learner.users.rows_for(["u1", "u2"]))
    items = torch.from_numpy(learner.items.rows_for(["i1", "i1"]))
    for model in (learner, restored.learner):
        model.learn(users, items, torch.ones(2))
    assert torch.equal(back.log_mass[:rows], prior.log_mass[:rows])


def test_round_trip_restores_the_successor_rings_and_the_co_visits(tmp_path: Path) -> None:
    """Both item-item tables come back as they were, so their candidates agree."""
    learner, _ = _trained()
    term = learner.transition
    assert term is not None
    save(tmp_path, learner, {})
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    back = restored.learner.transition
    assert back is not None
    assert torch.equal(back.table.successors[: term.table.capacity], term.table.successors)
    assert torch.equal(back.covisit.neighbours[: term.covisit.capacity], term.covisit.neighbours)
    assert int((term.covisit.neighbours >= 0).sum()) > 0  # it did count: the check means something
    rows = torch.arange(len(learner.items))
    torch.testing.assert_close(back.covisit.scores(rows)[1], term.covisit.scores(rows)[1])


def test_a_format_4_checkpoint_loads_with_fresh_transitions(tmp_path: Path) -> None:
    """A checkpoint without transitions loads, with empty successor rings."""
    learner, history = _trained()
    downgrade(write_format_5(tmp_path, learner, history, {}), 4)
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    assert restored.skipped == []
    back = restored.learner.transition
    assert back is not None
    assert (back.table.written == 0).all()


def test_a_format_3_checkpoint_loads_with_a_fresh_neutral_prior(tmp_path: Path) -> None:
    """A checkpoint without the prior loads its bias column unchanged and a prior of zeros."""
    learner, history = _trained()
    downgrade(write_format_5(tmp_path, learner, history, {}), 3)
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    assert restored.skipped == []
    assert torch.equal(restored.learner.item_vectors(), learner.item_vectors())
    assert (restored.learner.prior.log_mass[: learner.item_table.rows] == 0).all()


def test_a_format_2_checkpoint_loads_with_a_fresh_recent_item_context(tmp_path: Path) -> None:
    """A checkpoint without the context loads its tables; the query reads the seen history."""
    learner, history = _trained()
    downgrade(write_format_5(tmp_path, learner, history, {}), 2)
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    assert restored.skipped == []
    back = restored.learner
    assert torch.equal(back.user_table.view(), learner.user_table.view())
    assert back.context_table.rows == learner.context_table.rows
    users = learner.users.extent
    assert torch.equal(back.history.items[:users], history.items[:users])


def test_a_snapshot_holds_the_state_it_was_taken_at(tmp_path: Path) -> None:
    """A snapshot written after more learning restores the state at the snapshot, not later."""
    learner, history = _trained()
    before = _cloned(learner.state_dict())
    history_before = _cloned(history.state_dict(learner.user_table.rows))
    taken = snapshot(learner, {("clicks", 0): 5})
    users = torch.from_numpy(learner.users.rows_for(["u1", "u2", "new"]))
    items = torch.from_numpy(learner.items.rows_for(["i1", "i2", "new"]))
    learner.learn(users, items, torch.ones(3), click_ts=torch.full((3,), 1e6))
    path = write_snapshot(tmp_path, taken)
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    assert restored.path == path
    assert restored.offsets == {("clicks", 0): 5}
    back = restored.learner.state_dict()
    assert back.keys() == before.keys()
    for name, value in before.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(_tensor(back[name]), value), name
        else:
            assert back[name] == value, name
    seen = restored.learner.history.state_dict(restored.learner.user_table.rows)
    assert all(torch.equal(_tensor(seen[k]), _tensor(v)) for k, v in history_before.items())


def _cloned(state: StateDict) -> StateDict:
    """`state` with its own copy of every tensor, whatever `state_dict` gave."""
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in state.items()}


def test_a_checkpoint_whose_state_does_not_fit_is_skipped_naming_the_part(tmp_path: Path) -> None:
    """A manifest whose id list disagrees with the tables is refused as a CheckpointError."""
    learner, _ = _trained()
    good = save(tmp_path, learner, {})
    bad = save(tmp_path, learner, {})
    manifest = json.loads(bad.read_text())
    manifest["state"]["learner.items.ids"].append("one too many")
    bad.write_text(json.dumps(manifest))
    restored = load_latest(tmp_path, CPU)
    assert restored is not None
    assert restored.path == good
    assert "item_table.weight" in dict(restored.skipped)[bad.name]


def test_a_refused_write_raises_checkpoint_error_and_leaves_no_file(tmp_path: Path) -> None:
    """A file in place of the directory, or a disk that fails mid-file, leaves nothing behind."""
    learner, _ = _trained()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="cannot write"):
        save(blocker, learner, {})
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, hard))  # EFBIG mid-file, as ENOSPC would
    try:
        with pytest.raises(CheckpointError, match="too large"):
            save(directory, learner, {})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert list(directory.iterdir()) == []


def test_open_directory_clears_killed_writes_and_sets_corrupt_checkpoints_aside(
    tmp_path: Path,
) -> None:
    """Temporaries and orphans go, corrupt newer checkpoints move aside, the good one loads."""
    learner, _ = _trained()
    good = save(tmp_path, learner, {("clicks", 0): 1})
    bad = save(tmp_path, learner, {("clicks", 0): 2})
    bad.write_text("{not json")
    (tmp_path / "ckpt-1.safetensors.tmp").write_bytes(b"partial")
    (tmp_path / "ckpt-2.safetensors").write_bytes(b"no manifest")
    opened = open_directory(tmp_path, CPU)
    assert opened.restored is not None
    assert opened.restored.path == good
    assert [name for name, _ in opened.skipped] == [bad.name]
    assert sorted(opened.removed) == ["ckpt-1.safetensors.tmp", "ckpt-2.safetensors"]
    aside = tmp_path / SET_ASIDE
    assert sorted(p.name for p in aside.iterdir()) == sorted(
        [bad.name, bad.with_suffix(".safetensors").name]
    )
    assert sorted(p.name for p in tmp_path.glob("ckpt-*")) == sorted(
        [good.name, good.with_suffix(".safetensors").name]
    )
    with pytest.raises(CheckpointError, match="not a directory"):
        open_directory(good, CPU)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_a_snapshot_is_in_host_memory_and_loads_back_on_the_device(
    tmp_path: Path, device: str
) -> None:
    """State on any device is copied to the CPU by `snapshot` and restored onto the device."""
    on = torch.device(device)
    learner = OnlineLearner(LearnerConfig(dim=8, negatives=16, seed=3), on, SeenHistory(4, on))
    users = torch.from_numpy(learner.users.rows_for(["u1", "u2"])).to(on)
    items = torch.from_numpy(learner.items.rows_for(["i1", "i2"])).to(on)
    learner.learn(users, items, torch.ones(2, device=on), click_ts=torch.ones(2, device=on))
    taken = snapshot(learner, {})
    tensors = [v for v in taken.state.values() if isinstance(v, torch.Tensor)]
    assert tensors
    assert all(t.device.type == "cpu" for t in tensors)
    write_snapshot(tmp_path, taken)
    restored = load_latest(tmp_path, torch.device(device))
    assert restored is not None
    assert restored.learner.item_vectors().device.type == device
    assert torch.equal(restored.learner.item_vectors().cpu(), learner.item_vectors().cpu())
