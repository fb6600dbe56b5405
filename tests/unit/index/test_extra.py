"""Unit tests for `index.extra`: sparse extra scores, dense and merged beside a search."""

from __future__ import annotations

import pytest
import torch
from ranking_checks import assert_same_ranking

from index.exact import ExactIndex
from index.exclusion import top_k_excluding, top_k_per_weight
from index.extra import ExtraScores


def _setup(seed: int = 0) -> tuple[ExactIndex, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    items = torch.randn(300, 8, generator=gen)
    queries = torch.randn(5, 8, generator=gen)
    seen = torch.randint(0, 300, (5, 7), generator=gen)
    seen[0, 3:] = -1
    index = ExactIndex()
    index.refresh(items, torch.arange(300))
    return index, items, queries, seen


def _extra(seed: int = 1) -> ExtraScores:
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(-1, 300, (5, 40), generator=gen)
    rows[:, :5] = rows[:, 5:10]  # repeats sum
    return ExtraScores(rows, torch.rand(5, 40, generator=gen) * 6)


def test_totals_sum_repeats_per_row() -> None:
    """Each user's distinct rows carry the sum of their values."""
    extra = ExtraScores(torch.tensor([[3, -1, 3, 1]]), torch.tensor([[1.0, 5.0, 2.0, 4.0]]))
    rows, values = extra.totals()
    got = {int(r): float(v) for r, v in zip(rows[0], values[0], strict=True) if v}
    assert got == {1: 4.0, 3: 3.0}


@pytest.mark.parametrize("k", [1, 10, 50])
def test_merged_search_equals_the_dense_matrix(k: int) -> None:
    """Beside a k-NN search, extra candidates give the same lists as the dense path."""
    index, _, queries, seen = _setup()
    extra = _extra()
    counts = (seen >= 0).sum(1)
    dense = top_k_excluding(index, queries, seen, counts, k, extra=extra)
    index.dense_budget = 0  # force the search path
    merged = top_k_excluding(index, queries, seen, counts, k, extra=extra)
    assert_same_ranking(merged.rows, merged.scores, dense.rows, dense.scores)


def test_an_item_enters_a_list_on_its_extra_score_alone() -> None:
    """A low inner product with a large extra score still reaches the list."""
    index, items, queries, _ = _setup()
    worst = int((queries[:1] @ items.T).argmin())
    extra = ExtraScores(torch.tensor([[worst]]), torch.tensor([[1e4]]))
    index.dense_budget = 0
    nothing = torch.full((1, 1), -1)
    top = top_k_excluding(
        index, queries[:1], nothing, torch.zeros(1, dtype=torch.long), 5, extra=extra
    )
    assert int(top.rows[0, 0]) == worst


@pytest.mark.parametrize("dense", [True, False])
def test_per_weight_equals_one_search_per_weight(dense: bool) -> None:
    """The shared-work ranking under several weights equals separate rankings, on both paths."""
    index, _, queries, seen = _setup()
    if not dense:
        index.dense_budget = 0
    extra = _extra()
    counts = (seen >= 0).sum(1)
    weights = [0.0, 0.5, 8.0]
    together = top_k_per_weight(index, queries, seen, counts, 10, extra, weights)
    for weight, top in zip(weights, together, strict=True):
        scaled = ExtraScores(extra.rows, extra.values * weight)
        alone = top_k_excluding(index, queries, seen, counts, 10, extra=scaled)
        assert_same_ranking(top.rows, top.scores, alone.rows, alone.scores)
