"""Unit tests for `models.transitions` and `models.covisit`: successor rings, co-visits, pairing."""

from __future__ import annotations

import math

import pytest
import torch

from models.covisit import CoVisitation
from models.transitions import ItemTransitions, TransitionTerm


def _term(
    device: torch.device, slots: int = 8, window: int = 3, decay: float = 0.5
) -> TransitionTerm:
    return TransitionTerm(
        ItemTransitions(slots, window, decay, device), CoVisitation(4, 1e6, device)
    )


def _on(device: torch.device, values: list[int] | list[list[int]]) -> torch.Tensor:
    """Integer rows (or ring rows) on `device`."""
    return torch.tensor(values, dtype=torch.int64, device=device)


def _score(term: TransitionTerm, latest: list[int], items: int) -> torch.Tensor:
    """Dense successor scores over `items` rows of the last click (its weights over sqrt(total)).

    Computed on the table's device, returned on the host.
    """
    table, last = term.table, latest[0]
    dense = torch.zeros(items + 1, device=table.device)
    rows = table.successors[last].long()
    share = table.weights[last] / table.weights[last].sum().sqrt()
    dense.scatter_add_(0, rows.masked_fill(rows < 0, items), share)
    return dense[:items].cpu()


def _ring(table: ItemTransitions, row: int) -> dict[int, float]:
    """The successors of item `row` and their weights, read on the host."""
    successors, weights = table.successors[row].cpu(), table.weights[row].cpu()
    return {int(r): float(w) for r, w in zip(successors, weights, strict=True) if r >= 0}


def test_ring_keeps_the_newest_successors_in_order_of_arrival(device: torch.device) -> None:
    """Past `slots` pairs from one item, the oldest successors are overwritten."""
    table = ItemTransitions(slots=3, window=1, decay=1.0, device=device)
    ones = torch.ones(4, device=device)
    table.add(_on(device, [0, 0, 0, 0]), _on(device, [1, 2, 3, 4]), ones)
    assert sorted(table.successors[0].cpu().tolist()) == [2, 3, 4]
    assert int(table.written[0]) == 4
    table.add(_on(device, [0]), _on(device, [5]), ones[:1])
    assert sorted(table.successors[0].cpu().tolist()) == [3, 4, 5]


def test_pairs_reach_back_through_the_batch_and_the_recent_ring(device: torch.device) -> None:
    """A click pairs with the user's earlier clicks in the same batch and before it."""
    term = _term(device, window=3, decay=0.5)
    users = _on(device, [0, 1, 0])
    items = _on(device, [2, 9, 3])
    latest = _on(device, [[1, -1, -1], [-1, -1, -1], [1, -1, -1]])  # user 0 clicked 1 before
    term.fold(users, items, torch.ones(3, device=device), latest)
    after_one = _ring(term.table, 1)
    assert sorted(after_one) == [2, 3]  # 1 -> 2 at distance 1, 1 -> 3 at distance 2
    assert [after_one[2], after_one[3]] == pytest.approx([1.0, 0.5])  # decay ** (distance - 1)
    assert _ring(term.table, 2) == pytest.approx({3: 1.0})
    assert int(term.table.written[9]) == 0  # user 1 had nothing before


def test_a_planted_successor_tops_the_transition_score(device: torch.device) -> None:
    """After many users click A then B, a user who clicked A scores B highest."""
    term = _term(device, slots=16, window=2)
    one, latest = torch.ones(1, device=device), _on(device, [[0, -1]])
    for user in range(10):
        term.fold(_on(device, [user]), _on(device, [1]), one, latest)
    term.fold(_on(device, [20]), _on(device, [2]), one, latest)
    scores = _score(term, [0, -1], items=3)
    assert int(scores.argmax()) == 1
    # 10 of 11 successors of item 0 are item 1: shares over sqrt of the evidence
    torch.testing.assert_close(scores, torch.tensor([0.0, 10.0, 1.0]) / 11**0.5)


def test_reset_forgets_a_reused_row_and_every_pair_into_it(device: torch.device) -> None:
    """A row handed to a new item has no successors and is no one's successor."""
    table = ItemTransitions(slots=4, window=1, decay=1.0, device=device)
    table.add(_on(device, [0, 1, 1]), _on(device, [1, 0, 2]), torch.ones(3, device=device))
    table.reset(_on(device, [1]))
    assert (table.successors[1].cpu() == -1).all()
    assert 1 not in table.successors[0].cpu().tolist()
    assert 2 not in table.successors[1].cpu().tolist()


def test_growth_respects_the_row_cap(device: torch.device) -> None:
    """The table never allocates more item rows than its cap."""
    table = ItemTransitions(slots=2, window=1, decay=1.0, device=device)
    table.max_rows = 1500
    table.add(_on(device, [1200]), _on(device, [1300]), torch.ones(1, device=device))
    assert table.capacity == 1500


def test_state_round_trips(device: torch.device) -> None:
    """`load_state_dict(state_dict())` gives the same scores."""
    term = _term(device)
    users, items = _on(device, [0, 0, 0]), _on(device, [1, 2, 3])
    term.fold(users, items, torch.ones(3, device=device), torch.full((3, 3), -1, device=device))
    other = _term(device)
    other.load_state_dict(term.state_dict())
    assert torch.equal(_score(term, [1, 2, -1], 4), _score(other, [1, 2, -1], 4))
    assert torch.equal(other.covisit.neighbours.cpu(), term.covisit.neighbours.cpu())


def _neighbours(table: CoVisitation, row: int) -> dict[int, float]:
    """Item `row`'s co-visited rows and their decayed counts, from its host state."""
    state = table.state_dict()
    neighbours, counts = state["neighbours"], state["counts"]
    assert isinstance(neighbours, torch.Tensor)
    assert isinstance(counts, torch.Tensor)
    pairs = zip(neighbours[row].tolist(), counts[row].tolist(), strict=True)
    return {int(other): float(count) for other, count in pairs if other >= 0}


def test_co_visits_count_both_ways_and_sum_repeats(device: torch.device) -> None:
    """A pair counts for each of its items; repeats in a batch sum; padding and self-pairs don't."""
    table = CoVisitation(slots=2, half_life=1e9, device=device)
    before, after = _on(device, [0, 0, 1, -1, 3]), _on(device, [1, 1, 2, 2, 3])
    table.add(before, after, torch.ones(5, device=device))
    assert _neighbours(table, 0) == pytest.approx({1: 2.0})
    assert _neighbours(table, 1) == pytest.approx({0: 2.0, 2: 1.0})
    assert _neighbours(table, 2) == pytest.approx({1: 1.0})
    assert _neighbours(table, 3) == {}  # a self-pair is skipped
    neighbours, weights = table.scores(_on(device, [1, -1]))
    assert neighbours.cpu().tolist()[1] == [-1, -1]  # a `-1` row has none
    shares = dict(zip(neighbours[0].cpu().tolist(), weights[0].cpu().tolist(), strict=True))
    assert shares == pytest.approx({0: 2 / 3**0.5, 2: 1 / 3**0.5})  # counts over sqrt(total)


def test_a_new_neighbour_wears_the_lightest_down_before_it_takes_the_slot(
    device: torch.device,
) -> None:
    """A lighter newcomer lowers the held count; a heavier one replaces it (Misra-Gries)."""
    table = CoVisitation(slots=1, half_life=1e9, device=device)
    for other, weight in ((1, 3.0), (2, 1.0)):
        table.add(_on(device, [0]), _on(device, [other]), torch.tensor([weight], device=device))
    assert _neighbours(table, 0) == pytest.approx({1: 2.0})
    table.add(_on(device, [0]), _on(device, [2]), torch.tensor([5.0], device=device))
    assert _neighbours(table, 0) == pytest.approx({2: 5.0})


def test_counts_halve_every_half_life_pairs(device: torch.device) -> None:
    """Each pair folded in ages every count by `2 ** (-1 / half_life)`, its own included."""
    table = CoVisitation(slots=2, half_life=2.0, device=device)
    one = torch.ones(1, device=device)
    table.add(_on(device, [0]), _on(device, [1]), one)
    table.add(_on(device, [2]), _on(device, [3]), one)
    assert _neighbours(table, 0) == pytest.approx({1: 0.5})  # two pairs: one half-life
    assert _neighbours(table, 2) == pytest.approx({3: math.sqrt(0.5)})  # one pair: half of one


def test_co_visit_reset_forgets_a_row_and_every_pair_into_it(device: torch.device) -> None:
    """A row handed to a new item has no co-visits and is no one's co-visit."""
    table = CoVisitation(slots=3, half_life=1e9, device=device)
    table.add(_on(device, [0, 0, 1]), _on(device, [1, 2, 2]), torch.ones(3, device=device))
    table.reset(_on(device, [1]))
    assert _neighbours(table, 1) == {}
    assert _neighbours(table, 0) == pytest.approx({2: 1.0})
    assert _neighbours(table, 2) == pytest.approx({0: 1.0})


def test_folding_only_distinct_pairs_keeps_the_table_the_padded_fold_keeps() -> None:
    """The CPU's compacted fold (distinct pairs, free slots found per row) matches the padded one.

    Many pairs compete for few slots, with padding, repeats and self-pairs, over many batches.
    """
    cpu = torch.device("cpu")
    compact, padded = CoVisitation(4, 300.0, cpu), CoVisitation(4, 300.0, cpu)
    padded.compact = False
    assert compact.compact
    draw = torch.Generator().manual_seed(7)
    for _ in range(25):
        before = torch.randint(-1, 60, (800,), generator=draw)
        after = torch.randint(0, 60, (800,), generator=draw)
        weight = torch.rand(800, generator=draw)
        compact.add(before, after, weight)
        padded.add(before, after, weight)
    assert torch.equal(compact.neighbours, padded.neighbours)
    torch.testing.assert_close(compact.counts, padded.counts)
