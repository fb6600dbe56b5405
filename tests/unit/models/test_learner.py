"""Unit tests for `models.learner`: the online sampled-softmax learner (CPU, and CUDA if any)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.errors import ModelError, ModelFitError
from models.history import SeenHistory
from models.learner import LearnerConfig, OnlineLearner
from models.prior import FLOOR

CPU = torch.device("cpu")


def _learner(dim: int = 16, device: torch.device = CPU) -> OnlineLearner:
    return OnlineLearner(LearnerConfig(dim=dim, seed=0), device)


def _map(
    learner: OnlineLearner, users: list[str], items: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of `users` and `items` on the learner's device, mapping new ids as the worker does."""
    return (
        torch.from_numpy(learner.users.rows_for(users)).to(learner.device),
        torch.from_numpy(learner.items.rows_for(items)).to(learner.device),
    )


def test_learns_a_planted_two_group_preference(device: torch.device) -> None:
    """Users who click only their own group's items end up scoring that group higher."""
    learner = _learner(device=device)
    rng = np.random.default_rng(0)
    groups = 2
    users = [[f"u{g}-{n}" for n in range(10)] for g in range(groups)]
    items = [[f"i{g}-{n}" for n in range(10)] for g in range(groups)]
    losses = []
    for _ in range(300):
        group = rng.integers(groups, size=16)
        batch_users = [users[g][rng.integers(10)] for g in group]
        batch_items = [items[g][rng.integers(10)] for g in group]
        user_rows, item_rows = _map(learner, batch_users, batch_items)
        stats = learner.learn(user_rows, item_rows, torch.ones(16, device=device))
        assert stats.events == 16
        losses.append(stats.loss)
    assert np.all(np.isfinite(losses))
    # Uniform over the 20 items costs log(20); knowing the group, at best log(10).
    assert np.mean(losses[-20:]) < 0.9 * np.log(20)
    users_all = torch.arange(len(learner.users), device=device)
    scores = learner.user_vectors(users_all) @ learner.item_vectors().T
    for g in range(groups):
        own = torch.from_numpy(learner.items.rows_for(items[g])).to(device)
        other = torch.from_numpy(learner.items.rows_for(items[1 - g])).to(device)
        for user in users[g]:
            row = learner.users.row(user)
            assert scores[row, own].mean() > scores[row, other].mean(), user


def test_tables_grow_mid_stream_without_disturbing_old_rows(device: torch.device) -> None:
    """New ids mapped mid-stream get rows, past the first capacity, while old rows stay put."""
    learner = _learner(dim=8, device=device)
    user_rows, item_rows = _map(learner, ["u0", "u1"], ["i0", "i1"])
    learner.learn(user_rows, item_rows, torch.ones(2, device=device))
    users_before = learner.user_table.view().clone()
    items_before = learner.item_table.view().clone()
    assert users_before.shape == (2, 9)
    assert items_before.shape == (2, 9)

    new_items = [f"n{n}" for n in range(1500)]
    new_user_rows, new_item_rows = _map(learner, ["u2", "u3"], new_items[:2])
    learner.items.rows_for(new_items)
    learner.sync_rows()
    assert learner.item_vectors().shape == (1502, 9)
    assert learner.user_table.view().shape == (4, 9)
    assert torch.equal(learner.item_table.view()[:2], items_before)
    assert torch.equal(learner.user_table.view()[:2], users_before)

    items_mid = learner.item_vectors().clone()
    stats = learner.learn(new_user_rows, new_item_rows, torch.ones(2, device=device))
    untouched = torch.ones(learner.item_table.rows, dtype=torch.bool, device=device)
    untouched[stats.item_rows] = False
    assert torch.equal(learner.item_vectors()[untouched], items_mid[untouched])
    assert torch.equal(learner.user_table.view()[:2], users_before)
    assert torch.isfinite(learner.item_vectors()).all()


def test_learn_with_unmapped_rows_raises() -> None:
    """Rows past what the id maps hold raise `ModelError` instead of indexing garbage."""
    learner = _learner(dim=4)
    user_rows, item_rows = _map(learner, ["u0"], ["i0"])
    learner.learn(user_rows, item_rows, torch.ones(1))
    with pytest.raises(ModelError, match="rows_for"):
        learner.learn(torch.tensor([1]), item_rows, torch.ones(1))
    with pytest.raises(ModelError, match="rows_for"):
        learner.learn(user_rows, torch.tensor([5]), torch.ones(1))


def test_empty_batch_is_a_no_op() -> None:
    """An empty batch changes nothing and reports zero events."""
    learner = _learner(dim=4)
    stats = learner.learn(
        torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.int64), torch.empty(0)
    )
    assert stats.events == 0
    assert stats.loss == 0.0
    assert stats.item_rows.numel() == 0
    assert learner.steps == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dim": 0},
        {"dim": -3},
        {"learning_rate": -0.1},
        {"learning_rate": 0.0},
        {"negatives": 0},
        {"recent_items": -1},
    ],
)
def test_config_rejects_meaningless_values(kwargs: dict[str, float]) -> None:
    """`LearnerConfig` raises `ValueError` for a zero dimension or a non-positive step."""
    with pytest.raises(ValueError, match="must be"):
        LearnerConfig(**kwargs)  # type: ignore[arg-type]


def test_user_bias_column_stays_exactly_one() -> None:
    """The user's last column, which multiplies the item bias, is exactly 1.0 after many steps."""
    learner = _learner(dim=6)
    rng = np.random.default_rng(1)
    for _ in range(100):
        users = [f"u{n}" for n in rng.integers(20, size=12)]
        items = [f"i{n}" for n in rng.integers(30, size=12)]
        user_rows, item_rows = _map(learner, users, items)
        learner.learn(user_rows, item_rows, torch.from_numpy(rng.uniform(0.5, 3.0, 12)).float())
    last = learner.user_table.view()[:, -1]
    assert torch.equal(last, torch.ones_like(last))
    assert not torch.equal(learner.item_vectors()[:, -1], torch.zeros(len(learner.items)))


def test_learn_reports_exactly_the_item_rows_it_changed() -> None:
    """`item_rows` is distinct, holds the positives, and every other row is bit-identical."""
    learner = OnlineLearner(LearnerConfig(dim=8, negatives=2, seed=3), CPU)
    learner.items.rows_for([f"i{n}" for n in range(200)])
    learner.users.rows_for([f"u{n}" for n in range(10)])
    learner.sync_rows()
    users_before = learner.user_table.view().clone()
    items_before = learner.item_vectors().clone()
    user_rows = torch.tensor([0, 3, 3])
    item_rows = torch.tensor([5, 5, 17])
    stats = learner.learn(user_rows, item_rows, torch.ones(3))
    rows = stats.item_rows
    assert rows.unique().numel() == rows.numel()
    assert {5, 17} <= set(rows.tolist())
    assert rows.numel() <= 2 + 3 * 2
    changed = (learner.item_vectors() != items_before).any(dim=1).nonzero().squeeze(1)
    assert set(changed.tolist()) <= set(rows.tolist())
    assert {5, 17} <= set(changed.tolist())
    outside = torch.ones(200, dtype=torch.bool)
    outside[rows] = False
    assert torch.equal(learner.item_vectors()[outside], items_before[outside])
    other_users = torch.tensor([n not in (0, 3) for n in range(10)])
    assert torch.equal(learner.user_table.view()[other_users], users_before[other_users])
    assert not torch.equal(learner.user_table.view()[0], users_before[0])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weight_raises_and_leaves_tables_unchanged(bad: float) -> None:
    """A NaN or infinite weight raises `ModelFitError` and applies nothing."""
    learner = _learner(dim=4)
    user_rows, item_rows = _map(learner, ["u0", "u1", "u2"], ["i0", "i1", "i2"])
    learner.learn(user_rows, item_rows, torch.ones(3))
    learner.sync_rows()
    users_before = learner.user_table.weight.clone()
    items_before = learner.item_table.weight.clone()
    user_sq = learner.user_table.grad_sq.clone()
    item_sq = learner.item_table.grad_sq.clone()
    with pytest.raises(ModelFitError, match="non-finite"):
        learner.learn(user_rows, item_rows, torch.tensor([1.0, bad, 1.0]))
    assert learner.steps == 1
    assert torch.equal(learner.user_table.weight[:3], users_before[:3])
    assert torch.equal(learner.item_table.weight[:3], items_before[:3])
    assert torch.equal(learner.user_table.grad_sq, user_sq)
    assert torch.equal(learner.item_table.grad_sq, item_sq)


def _clicks(learner: OnlineLearner, pairs: list[tuple[str, str]]) -> None:
    users, items = _map(learner, [u for u, _ in pairs], [i for _, i in pairs])
    learner.learn(users, items, torch.ones(len(pairs)))


def test_a_new_user_is_served_the_item_bias_ranking() -> None:
    """A user row starts at zero factors and a 1, so its scores are the items' learned biases."""
    learner = _learner(dim=8)
    rng = np.random.default_rng(2)
    for _ in range(50):  # item i0 is clicked most, i9 least
        _clicks(learner, [(f"u{n}", f"i{min(9, int(rng.exponential(2.0)))}") for n in range(16)])
    learner.users.rows_for(["newcomer"])
    learner.sync_rows()
    query = learner.user_vectors(torch.tensor([learner.users.row("newcomer")]))[0]
    assert torch.equal(query, torch.cat([torch.zeros(8), torch.ones(1)]))
    scores = learner.item_vectors() @ query
    assert int(scores.argmax()) == learner.items.row("i0")


def test_query_adds_the_scaled_context_of_recent_items() -> None:
    """A user's query is their row plus the context vectors of their last items over N**alpha."""
    learner = OnlineLearner(LearnerConfig(dim=4, recent_items=2, recent_alpha=0.5), CPU)
    _clicks(learner, [("u", "a"), ("u", "b"), ("u", "c"), ("v", "a")])
    row = torch.tensor([learner.users.row("u")])
    recent = torch.tensor([learner.items.row("b"), learner.items.row("c")])
    expected = learner.user_table.weight[row[0]] + learner.context_table.weight[recent].sum(
        0
    ) / np.sqrt(2)
    torch.testing.assert_close(learner.user_vectors(row)[0], expected)
    assert float(learner.user_vectors(row)[0, -1]) == 1.0


def test_a_given_ring_is_read_to_its_newest_recent_items_and_written_once_per_click() -> None:
    """A learner given a wide ring reads its newest `recent_items` slots, writes each click once."""
    history = SeenHistory(8, CPU)
    learner = OnlineLearner(LearnerConfig(dim=4, recent_items=2, recent_alpha=0.5), CPU, history)
    assert learner.history is history
    for item in ("a", "b", "c"):  # one batch each: a step reads the ring before its clicks go in
        _clicks(learner, [("u", item)])
    row = torch.tensor([learner.users.row("u")])
    assert history.written[row].tolist() == [3]
    assert history.seen_counts(row).tolist() == [3]  # the ring keeps all three, wider than 2
    recent = torch.tensor([learner.items.row("b"), learner.items.row("c")])
    expected = learner.user_table.weight[row[0]] + learner.context_table.weight[recent].sum(
        0
    ) / np.sqrt(2)
    torch.testing.assert_close(learner.user_vectors(row)[0], expected)


def test_a_ring_narrower_than_recent_items_gives_the_query_what_it_holds() -> None:
    """With a 1-slot ring and `recent_items=4` the query adds the one newest item, unscaled."""
    learner = OnlineLearner(LearnerConfig(dim=4, recent_items=4), CPU, SeenHistory(1, CPU))
    _clicks(learner, [("u", "a"), ("u", "b")])
    row = torch.tensor([learner.users.row("u")])
    newest = learner.items.row("b")
    expected = learner.user_table.weight[row[0]] + learner.context_table.weight[newest]
    torch.testing.assert_close(learner.user_vectors(row)[0], expected)


def test_recovers_a_planted_taste_that_drifts() -> None:
    """When every user switches to the other group's items, their lists follow the switch."""
    learner = OnlineLearner(LearnerConfig(dim=16, negatives=32, seed=0), CPU)
    rng = np.random.default_rng(0)
    users = [f"u{n}" for n in range(40)]
    items = [[f"i{g}-{n}" for n in range(30)] for g in range(2)]
    taste = rng.integers(2, size=len(users))

    def top_group_share() -> float:
        rows = torch.from_numpy(learner.users.rows_for(users))
        top = (learner.user_vectors(rows) @ learner.item_vectors().T).topk(10, dim=1).indices
        ids = learner.items.ids_of(top.numpy())
        own = [[i.startswith(f"i{taste[n]}-") for i in ids[n]] for n in range(len(users))]
        return float(np.mean(own))

    for phase in range(2):
        for _ in range(120):
            picks = rng.integers(len(users), size=32)
            _clicks(learner, [(users[u], items[taste[u]][rng.integers(30)]) for u in picks])
        assert top_group_share() > 0.9, phase
        taste = 1 - taste
        if phase == 0:
            assert top_group_share() < 0.1


def test_the_popularity_prior_ranks_a_recent_burst_above_old_popularity() -> None:
    """A burst of recent clicks on one item outranks an item that was popular long ago."""
    config = LearnerConfig(dim=8, popularity_tau=50.0, popularity_clock="events")
    learner = OnlineLearner(config, CPU)
    users, items = _map(learner, [f"u{n}" for n in range(200)], ["old"] * 200)
    learner.learn(users, items, torch.ones(200))
    for step in range(10):  # 500 events of other traffic: old popularity decays
        users, items = _map(
            learner, [f"v{n}" for n in range(50)], [f"x{step}-{n}" for n in range(50)]
        )
        learner.learn(users, items, torch.ones(50))
    users, items = _map(learner, [f"w{n}" for n in range(20)], ["new"] * 20)
    learner.learn(users, items, torch.ones(20))
    bias = learner.item_vectors()[:, -1]
    assert bias[learner.items.row("new")] > bias[learner.items.row("old")]


def test_the_prior_time_clock_follows_event_times_and_rebases() -> None:
    """On the time clock clicks decay by event time, and a rebase keeps the numbers small."""
    config = LearnerConfig(dim=4, popularity_clock="time", popularity_tau=10.0)
    learner = OnlineLearner(config, CPU)
    users, items = _map(learner, ["a", "b", "c"], ["old", "old", "old"])
    learner.learn(users, items, torch.ones(3), event_ts=torch.full((3,), 1000.0))
    users, items = _map(learner, ["d"], ["new"])
    learner.learn(users, items, torch.ones(1), event_ts=torch.tensor([2000.0]))
    mass = learner.prior.log_mass
    assert learner.prior.ref == 2000.0  # rebased: 100 time constants later
    assert mass[learner.items.row("new")] == pytest.approx(0.0)
    assert mass[learner.items.row("old")] == pytest.approx(np.log(3) - 100.0)
    assert learner.item_vectors()[:, -1].abs().max() < 200.0


def test_reset_rows_clears_the_prior_of_a_reused_item_row() -> None:
    """A reset item row holds no clicks: its prior is the floor and its bias ranks it last."""
    learner = OnlineLearner(LearnerConfig(dim=4), CPU)
    users, items = _map(learner, ["a", "b"], ["hit", "miss"])
    learner.learn(users, items, torch.ones(2))
    row = learner.items.row("hit")
    assert learner.prior.log_mass[row] > -10.0
    learner.reset_rows(users.new_empty(0), torch.tensor([row]))
    assert learner.prior.log_mass[row] == pytest.approx(FLOOR)
    assert learner.item_vectors()[row, -1] == pytest.approx(
        LearnerConfig().popularity_weight * FLOOR
    )
    learner.cap_rows(10, 5)
    assert learner.prior.max_rows == 5


def test_bias_decay_keeps_the_bias_step_from_dying_out() -> None:
    """With a decaying accumulator a much-clicked item's bias still moves by a fixed-size step."""
    moved = {}
    for decay in (0.0, 0.9):
        learner = OnlineLearner(LearnerConfig(dim=4, popularity_weight=0.0, bias_decay=decay), CPU)
        for _ in range(200):
            users, items = _map(learner, ["a", "b"], ["x", "y"])
            learner.learn(users, items, torch.ones(2))
        before = learner.item_vectors()[:, -1].clone()
        users, items = _map(learner, ["a"], ["x"])
        learner.learn(users, items, torch.ones(1))
        moved[decay] = float((learner.item_vectors()[:, -1] - before).abs().max())
    assert moved[0.9] > 3 * moved[0.0]
