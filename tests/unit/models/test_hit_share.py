"""A share picked by the hits it would have had in a top-K list."""

from __future__ import annotations

import pytest
import torch

from models.hit_share import HitShare

CPU = torch.device("cpu")


def _labels(
    rows: int, second_only: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ten candidates; the click (column 9) ties column 3 under the first component.

    `second_only`: the second component ranks the click first, so any share of it
    lifts the click into a top 3; else it ranks the click last, and only a share of
    0 keeps it in a top 4 (ahead of nothing but column 3's tie).
    """
    first = torch.log_softmax(-torch.arange(10.0).repeat(rows, 1), 1)
    first[:, 9] = first[:, 3]  # the click: fourth under the first component
    order = torch.arange(10.0) if second_only else -torch.arange(10.0)
    second = torch.log_softmax(order.repeat(rows, 1) * 5, 1)
    return first, second, torch.full((rows,), 9), torch.arange(rows)


def _learn(share: HitShare, rows: int, second_only: bool) -> None:
    """One click on each of `rows` lists, which then end."""
    share.learn(*_labels(rows, second_only))
    share.settle(torch.arange(rows))


def test_it_stays_at_its_start_until_enough_labels() -> None:
    """Fewer than `least` labels: the start, whatever they say."""
    share = HitShare(0.4, CPU, top_k=3, lists=64, least=50)
    _learn(share, 49, second_only=True)
    assert float(share.value) == pytest.approx(0.4)


def test_the_share_that_names_the_clicks_wins_ties_going_to_the_start() -> None:
    """A click the second component lifts: every share > 0 hits it, and the start is kept."""
    lifted = HitShare(0.4, CPU, top_k=3, lists=64, least=50)
    _learn(lifted, 60, second_only=True)
    assert float(lifted.hits[0]) == 0  # share 0: the first component alone misses it
    assert float(lifted.value) == pytest.approx(0.4)
    unlifted = HitShare(0.4, CPU, top_k=4, lists=64, least=50)  # the first's top 4 holds it
    _learn(unlifted, 60, second_only=False)  # and the second pushes it down
    assert float(unlifted.value) == 0.0


def test_a_list_hits_once_any_of_its_clicks_is_named_and_counts_when_it_ends() -> None:
    """Two clicks on list 0 (one named), two missed on list 1, none on list 2: 1 hit of 2."""
    share = HitShare(0.4, CPU, top_k=3, lists=4)
    first, second, positive, _ = _labels(3, second_only=True)
    positive[1:] = -1  # list 0's second click and list 1's: not among their candidates
    share.learn(first, second, positive, torch.tensor([0, 0, 1]))
    share.learn(first[:1], second[:1], torch.tensor([-1]), torch.tensor([1]))  # a miss
    assert float(share.labels) == 0  # nothing ended yet
    share.settle(torch.tensor([0, 1, 2]))
    assert float(share.labels) == pytest.approx(2.0, rel=1e-3)
    assert share.hits[0] == 0  # share 0 named no click
    assert float(share.hits[-1]) == pytest.approx(1.0, rel=1e-3)
    share.settle(torch.tensor([0, 1]))  # ended lists start afresh: nothing more to count
    assert float(share.labels) == pytest.approx(2.0, rel=1e-3)


def test_rows_the_second_component_is_silent_on_are_not_counted() -> None:
    """A row where the second component holds no mass says nothing about its share."""
    share = HitShare(0.4, CPU, top_k=3, lists=4)
    first, second, positive, lists = _labels(2, second_only=True)
    second[1] = -torch.inf
    share.learn(first, second, positive, lists)
    share.settle(lists)
    assert float(share.labels) == pytest.approx(1.0, rel=1e-3)


def test_counts_round_trip_and_blend_but_not_across_grids() -> None:
    """The counts survive a checkpoint and average with another worker's on the same grid."""
    a = HitShare(0.4, CPU, top_k=3, lists=32, least=10)
    b = HitShare(0.4, CPU, top_k=3, lists=32, least=10)
    _learn(a, 20, second_only=True)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(b.hits, a.hits)
    assert float(b.value) == float(a.value)
    fresh = HitShare(0.4, CPU, top_k=3, lists=32, least=10)
    fresh.blend(a.shared())
    torch.testing.assert_close(fresh.hits, a.hits / 2)
    other = HitShare(0.4, CPU, top_k=3, lists=32, grid=(0.0, 0.5))
    other.load_state_dict(a.state_dict())
    other.blend(a.shared())
    assert float(other.labels) == 0
