"""Unit tests for `worker.engine.engine.Engine`: the learn-then-rank step of worker and eval."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from index.exact import ExactIndex
from models.history import SeenHistory
from models.learner import LearnerConfig, OnlineLearner
from models.rows import RowLimits, RowPolicy
from stream.payload import recommendations
from worker.engine.engine import Engine


def _engine(device: torch.device, top_k: int = 3) -> Engine:
    learner = OnlineLearner(LearnerConfig(dim=8, negatives=4), device, SeenHistory(16, device))
    return Engine(learner, ExactIndex(), top_k)


def _learn(engine: Engine, users: list[str], items: list[str], ts: float = 1.0) -> None:
    n = len(users)
    engine.learn(users, items, np.full(n, ts), np.ones(n, dtype=np.float32))


def _user_rows(engine: Engine, users: list[str]) -> torch.Tensor:
    """The rows of known `users`, on the engine's device."""
    rows = [engine.learner.users.row(user) for user in users]
    return torch.tensor(rows, dtype=torch.int64, device=engine.device)


def _first_list(engine: Engine, user: str) -> list[str]:
    """The items of `user`'s published list."""
    return recommendations(engine.lists(engine.rank(_user_rows(engine, [user]))))[0].items


def test_known_user_rows_marks_unknown_ids_and_creates_none(device: torch.device) -> None:
    """Ids never learned come back as -1 and get no row."""
    engine = _engine(device)
    _learn(engine, ["a", "b"], ["x", "y"])
    rows = engine.known_user_rows(["b", "zzz", "a"])
    assert rows.tolist() == [1, -1, 0]
    assert "zzz" not in engine.learner.users


def test_lists_leave_out_seen_items_and_carry_the_newest_event_time(
    device: torch.device,
) -> None:
    """A user's list holds only items they have not clicked, with their newest event time."""
    engine = _engine(device, top_k=5)
    _learn(engine, ["a"] * 3 + ["b"] * 3, ["i1", "i2", "i3", "i3", "i4", "i5"], ts=7.0)
    _learn(engine, ["a"], ["i6"], ts=9.0)
    recs = recommendations(engine.lists(engine.rank(_user_rows(engine, ["a"]))))
    assert len(recs) == 1
    assert recs[0].user == "a"
    assert set(recs[0].items) == {"i4", "i5"}  # the only items "a" has not clicked
    assert recs[0].event_ts == 9.0
    assert recs[0].scores == sorted(recs[0].scores, reverse=True)


def test_the_engine_and_its_learner_share_one_ring_written_once_per_click(
    device: torch.device,
) -> None:
    """The seen history is the learner's ring; a batch of distinct clicks counts once each."""
    engine = _engine(device)
    assert engine.history is engine.learner.history
    _learn(engine, ["a", "a", "b"], ["i1", "i2", "i1"], ts=3.0)
    _learn(engine, ["a"], ["i3"], ts=5.0)
    rows = _user_rows(engine, ["a", "b"])
    assert engine.history.written[rows].tolist() == [3, 1]
    assert engine.history.last_ts[rows].tolist() == [5.0, 3.0]


def test_touched_users_are_the_distinct_users_of_the_batch(device: torch.device) -> None:
    """Learning reports each user of the batch once, as rows on the engine's device."""
    engine = _engine(device)
    n = 4
    learned = engine.learn(["u", "v", "u", "u"], ["p", "q", "r", "p"], np.ones(n), np.ones(n))
    assert learned.touched.device.type == device.type
    touched = engine.learner.users.ids_of(learned.touched.cpu().numpy())
    assert sorted(touched.tolist()) == ["u", "v"]


def _bounded(
    device: torch.device,
    users: RowLimits,
    items: RowLimits,
    top_k: int,
    *,
    dense: bool = True,
    **config: float,
) -> Engine:
    learner = OnlineLearner(
        LearnerConfig(dim=4, negatives=2, **config), device, SeenHistory(8, device)
    )  # type: ignore[arg-type]
    rows = RowPolicy.over(learner.users, learner.items, users, items)
    index = ExactIndex() if dense else ExactIndex(dense_budget=0)
    return Engine(learner, index, top_k, rows)


@pytest.mark.parametrize("dense", [True, False])
def test_free_item_rows_never_appear_in_lists(device: torch.device, dense: bool) -> None:
    """An item freed by the TTL is masked out of lists, even with the best score of all."""
    engine = _bounded(device, RowLimits(10), RowLimits(10, ttl_s=50.0), top_k=3, dense=dense)
    _learn(engine, ["u0"], ["gone"], ts=0.0)
    _learn(engine, ["u1", "u1"], ["i1", "i2"], ts=100.0)  # the sweep at t=100 frees "gone"
    assert "gone" not in engine.learner.items
    engine.learner.item_table.weight[0, -1] = 1e6  # the freed row would top every list
    engine.index.refresh(
        engine.learner.item_vectors(), torch.zeros(1, dtype=torch.int64, device=device)
    )
    rows = torch.tensor([engine.learner.users.row("u1"), 0], device=device)
    ranked = engine.rank(rows)
    assert 0 not in ranked.item_rows.tolist()
    for rec in recommendations(engine.lists(ranked)):
        assert None not in rec.items
        assert set(rec.items) <= {"i1", "i2"}


def test_free_item_mask_grows_by_doubling_but_never_past_the_item_cap(device: torch.device) -> None:
    """The mask of free item rows allocates at most the item cap (1,100), not 2,048 rows."""
    engine = _bounded(device, RowLimits(10), RowLimits(1100), top_k=3)
    items = [f"i{n}" for n in range(1100)]
    _learn(engine, ["u"] * len(items), items)
    assert engine.learner.items.extent == 1100
    assert engine._free_items.shape[0] == 1100


def test_an_evicted_user_who_returns_gets_the_cold_start_list(device: torch.device) -> None:
    """A returning evicted user starts fresh: no old history, a list ordered by item bias."""
    engine = _bounded(
        device,
        RowLimits(2, evict_fraction=0.5),
        RowLimits(10),
        top_k=4,
        learning_rate=1e-9,
        init_std=1e-4,
        popularity_weight=0.0,  # the biases are set by hand below
        transition_slots=0,  # p's i5 -> i0 would lift i0: item state, not the evicted user's
    )
    items = [f"i{n}" for n in range(6)]
    _learn(engine, ["p"] * 6, items, ts=1.0)
    _learn(engine, ["a", "a"], ["i4", "i5"], ts=2.0)
    learner = engine.learner
    weight = learner.item_table.weight
    weight[:, :-1] = 0.0
    item_rows = torch.from_numpy(learner.items.rows_for(items)).to(device)
    weight[item_rows, -1] = torch.tensor([0.0, 4.0, 3.0, 2.0, 1.0, 0.0], device=device)
    weight[learner.items.row("i0"), 0] = 1.0
    learner.user_table.weight[learner.users.row("a"), 0] = 1e3  # "a" has learned to love i0
    assert _first_list(engine, "a")[0] == "i0"
    _learn(engine, ["p"], ["i0"], ts=3.0)
    _learn(engine, ["b"], ["i0"], ts=4.0)  # the cap: "a" (seen at t=2) is evicted
    assert "a" not in learner.users
    learned = engine.learn(["a"], ["i5"], np.array([5.0]), np.ones(1, dtype=np.float32))
    row = learner.users.row("a")
    seen = engine.history.seen(_user_rows(engine, ["a"])).cpu()
    assert seen.tolist() == [[learner.items.row("i5")]]
    assert (
        float(learner.user_table.grad_sq[row, 0]) < 1.0
    )  # one step of fresh state, not the old one
    rec = recommendations(engine.lists(engine.rank(learned.touched)))[0]
    assert rec.items == ["i1", "i2", "i3", "i4"]  # by bias; i4 was seen before eviction


def test_events_without_rows_are_counted_not_learned(device: torch.device) -> None:
    """Clicks on items below the occurrence threshold are reported as unlearned."""
    engine = _bounded(device, RowLimits(10), RowLimits(10, min_occurrences=2), top_k=2)
    n = 3
    learned = engine.learn(["u", "u", "v"], ["x", "x", "y"], np.ones(n), np.ones(n))
    assert learned.unlearned == 1  # "y" seen once; "x" reaches its threshold within the batch
    assert "y" not in engine.learner.items
    assert engine.history.seen(_user_rows(engine, ["v"])).cpu().tolist() == [[-1]]


def test_tables_never_allocate_beyond_the_caps(device: torch.device) -> None:
    """Growth by doubling is clamped to the caps on rows."""
    engine = _bounded(device, RowLimits(1500), RowLimits(1100), top_k=2)
    n = 2000
    ids = [str(k) for k in range(n)]
    engine.learn(ids, ids, np.ones(n), np.ones(n))
    assert engine.learner.user_table.capacity == 1500
    assert engine.learner.item_table.capacity == 1100
    assert engine.history.capacity == 1500


def test_cold_start_list_ranks_items_by_bias_and_is_empty_before_any_item(
    device: torch.device,
) -> None:
    """The cold-start list is the item-bias ranking, and empty while no item is known."""
    engine = _engine(device, top_k=4)
    assert (engine.rank_cold_start().item_rows == -1).all()
    _learn(engine, ["a", "b", "c"], ["x", "y", "z"], ts=5.0)
    engine.learner.item_table.weight[:3, -1] = torch.tensor([0.1, 3.0, 1.0], device=device)
    cold = engine.cold_start()
    assert cold.items == ["y", "z", "x"]
    assert cold.scores == pytest.approx([3.0, 1.0, 0.1])
    assert cold.event_ts == 5.0


def _transitions_engine(device: torch.device, dense: bool) -> Engine:
    learner = OnlineLearner(
        LearnerConfig(dim=8, negatives=8, transition_slots=16), device, SeenHistory(16, device)
    )
    index = ExactIndex() if dense else ExactIndex(dense_budget=0)
    return Engine(learner, index, top_k=3)


@pytest.mark.parametrize("dense", [True, False])
def test_a_planted_next_item_tops_the_list_after_its_predecessor(
    device: torch.device, dense: bool
) -> None:
    """When users click b right after a, a newcomer who clicks a is shown b first."""
    engine = _transitions_engine(device, dense)
    filler = [f"f{n}" for n in range(20)]
    for n in range(30):
        _learn(engine, [f"u{n}"] * 3, [filler[n % 20], "a", "b"])
    _learn(engine, ["new"], ["a"])
    assert _first_list(engine, "new")[0] == "b"


@pytest.mark.parametrize("dense", [True, False])
def test_transitions_follow_a_drift_in_what_comes_next(device: torch.device, dense: bool) -> None:
    """After a -> b gives way to a -> c, a user who clicks a is shown c first."""
    engine = _transitions_engine(device, dense)
    for n in range(30):
        _learn(engine, [f"u{n}"] * 2, ["a", "b"])
    for n in range(30, 70):
        _learn(engine, [f"u{n}"] * 2, ["a", "c"])
    _learn(engine, ["new"], ["a"])
    assert _first_list(engine, "new")[0] == "c"


def test_a_batch_larger_than_the_learn_chunk_is_learned_in_steps_of_it(
    device: torch.device,
) -> None:
    """A backlog's large batch takes one gradient step per chunk, its users all touched."""
    learner = OnlineLearner(LearnerConfig(dim=8, negatives=4), device, SeenHistory(16, device))
    engine = Engine(learner, ExactIndex(), 3, learn_chunk=10)
    users = [f"u{n % 7}" for n in range(35)]
    items = [f"i{n % 11}" for n in range(35)]
    learned = engine.learn(users, items, np.arange(35, dtype=np.float64), np.ones(35, np.float32))
    assert learner.steps == 4  # 10 + 10 + 10 + 5
    assert sorted(learned.touched.cpu().tolist()) == list(range(7))
    assert learned.unlearned == 0


def test_a_partition_running_ahead_does_not_move_the_clock_for_the_others() -> None:
    """The batch clock stops at the watermark; without one it is the newest event's time.

    The cold-start list still carries the newest event folded in (the contract's `event_ts`).
    """
    held, plain = _engine(torch.device("cpu")), _engine(torch.device("cpu"))
    for engine, watermark in ((held, 10.0), (plain, float("inf"))):
        _learn(engine, ["a"], ["x"], ts=0.0)
        ts = np.array([1e6, 10.0])  # b's partition is a long way ahead of a's
        engine.learn(["b", "a"], ["y", "z"], ts, np.ones(2, dtype=np.float32), watermark)
    assert held.clock == 10.0
    assert plain.clock == 1e6
    assert held.cold_start().event_ts == 1e6  # still stamped with the newest event folded in
    a = torch.tensor([held.learner.users.row("a")])
    assert held.stages.candidates(a).idle.tolist() == [0.0]  # a is mid-session, not idle
    assert plain.stages.candidates(a).idle.tolist() == [1e6 - 10.0]  # a looks long gone
