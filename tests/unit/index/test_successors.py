"""Successor rings read as neighbours: kept compactions equal fresh ones as rings change."""

from __future__ import annotations

import torch

from index.candidates.successors import SuccessorRings
from models.transitions import ItemTransitions

ITEMS = 40


def _pairs(generator: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    before = torch.randint(0, ITEMS, (n,), generator=generator)
    after = torch.randint(0, ITEMS, (n,), generator=generator)
    weight = torch.rand(n, generator=generator) + 0.1
    return before, after, weight


def test_kept_compactions_equal_fresh_ones_through_writes_and_resets() -> None:
    """Each round writes some rings (and may reset rows); reads match a reader that keeps none."""
    table = ItemTransitions(slots=16, window=4, decay=0.8, device=torch.device("cpu"))
    kept = SuccessorRings(table, static_shapes=False, read=8)
    fresh = SuccessorRings(table, static_shapes=True, read=8)
    generator = torch.Generator().manual_seed(0)
    compacted: list[int] = []
    compact = kept._compact

    def counting(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        compacted.append(rows.numel())
        return compact(rows)

    kept._compact = counting  # type: ignore[method-assign]
    for round_ in range(12):
        table.add(*_pairs(generator, 30))
        if round_ % 5 == 4:
            table.reset(torch.tensor([3, 7]))
        read = torch.randint(-1, ITEMS, (6, 5), generator=generator)
        top, weight = kept.scores(read)
        want_top, want_weight = fresh.scores(read)
        assert torch.equal(top, want_top)
        torch.testing.assert_close(weight, want_weight)
    again = torch.arange(ITEMS).view(4, -1)
    kept.scores(again)
    compacted.clear()
    kept.scores(again)  # nothing written since: nothing compacted again
    assert compacted == []
    table.add(torch.tensor([5]), torch.tensor([6]), torch.tensor([1.0]))
    top, _ = kept.scores(again)
    assert compacted == [1]  # only the ring that was written
    assert 6 in top.view(-1, top.shape[-1])[5].tolist()
