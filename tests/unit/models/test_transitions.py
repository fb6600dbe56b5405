"""Unit tests for `models.transitions`: the successor rings and the pairing of clicks."""

from __future__ import annotations

import torch

from models.covisit import CoVisitation
from models.transitions import ItemTransitions, TransitionTerm

CPU = torch.device("cpu")


def _term(slots: int = 8, window: int = 3, decay: float = 0.5) -> TransitionTerm:
    return TransitionTerm(ItemTransitions(slots, window, decay, CPU), CoVisitation(4, 1e6, CPU))


def _score(term: TransitionTerm, latest: list[int], items: int) -> torch.Tensor:
    """Dense successor scores over `items` rows of the last click: its weights over sqrt(total)."""
    table, last = term.table, latest[0]
    dense = torch.zeros(items + 1)
    rows = table.successors[last].long()
    share = table.weights[last] / table.weights[last].sum().sqrt()
    dense.scatter_add_(0, rows.masked_fill(rows < 0, items), share)
    return dense[:items]


def test_ring_keeps_the_newest_successors_in_order_of_arrival() -> None:
    """Past `slots` pairs from one item, the oldest successors are overwritten."""
    table = ItemTransitions(slots=3, window=1, decay=1.0, device=CPU)
    table.add(torch.tensor([0, 0, 0, 0]), torch.tensor([1, 2, 3, 4]), torch.ones(4))
    assert sorted(table.successors[0].tolist()) == [2, 3, 4]
    assert int(table.written[0]) == 4
    table.add(torch.tensor([0]), torch.tensor([5]), torch.ones(1))
    assert sorted(table.successors[0].tolist()) == [3, 4, 5]


def test_pairs_reach_back_through_the_batch_and_the_recent_ring() -> None:
    """A click pairs with the user's earlier clicks in the same batch and before it."""
    term = _term(window=3, decay=0.5)
    users = torch.tensor([0, 1, 0])
    items = torch.tensor([2, 9, 3])
    latest = torch.tensor([[1, -1, -1], [-1, -1, -1], [1, -1, -1]])  # user 0 clicked 1 before
    term.fold(users, items, torch.ones(3), latest)
    succ, weights = term.table.successors, term.table.weights
    after_one = {int(r): float(w) for r, w in zip(succ[1], weights[1], strict=True) if r >= 0}
    assert after_one == {2: 1.0, 3: 0.5}  # 1 -> 2 at distance 1, 1 -> 3 at distance 2
    after_two = {int(r): float(w) for r, w in zip(succ[2], weights[2], strict=True) if r >= 0}
    assert after_two == {3: 1.0}
    assert int(term.table.written[9]) == 0  # user 1 had nothing before


def test_a_planted_successor_tops_the_transition_score() -> None:
    """After many users click A then B, a user who clicked A scores B highest."""
    term = _term(slots=16, window=2)
    for user in range(10):
        latest = torch.tensor([[0, -1]])
        term.fold(torch.tensor([user]), torch.tensor([1]), torch.ones(1), latest)
    term.fold(torch.tensor([20]), torch.tensor([2]), torch.ones(1), torch.tensor([[0, -1]]))
    scores = _score(term, [0, -1], items=3)
    assert int(scores.argmax()) == 1
    # 10 of 11 successors of item 0 are item 1: shares over sqrt of the evidence
    torch.testing.assert_close(scores, torch.tensor([0.0, 10.0, 1.0]) / 11**0.5)


def test_reset_forgets_a_reused_row_and_every_pair_into_it() -> None:
    """A row handed to a new item has no successors and is no one's successor."""
    table = ItemTransitions(slots=4, window=1, decay=1.0, device=CPU)
    table.add(torch.tensor([0, 1, 1]), torch.tensor([1, 0, 2]), torch.ones(3))
    table.reset(torch.tensor([1]))
    assert (table.successors[1] == -1).all()
    assert 1 not in table.successors[0].tolist()
    assert 2 not in table.successors[1].tolist()


def test_growth_respects_the_row_cap() -> None:
    """The table never allocates more item rows than its cap."""
    table = ItemTransitions(slots=2, window=1, decay=1.0, device=CPU)
    table.max_rows = 1500
    table.add(torch.tensor([1200]), torch.tensor([1300]), torch.ones(1))
    assert table.capacity == 1500


def test_state_round_trips() -> None:
    """`load_state_dict(state_dict())` gives the same scores."""
    term = _term()
    term.fold(
        torch.tensor([0, 0, 0]), torch.tensor([1, 2, 3]), torch.ones(3), torch.full((3, 3), -1)
    )
    other = _term()
    other.load_state_dict(term.state_dict())
    assert torch.equal(_score(term, [1, 2, -1], 4), _score(other, [1, 2, -1], 4))
    assert torch.equal(other.covisit.neighbours, term.covisit.neighbours)
