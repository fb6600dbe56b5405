"""Extra scores over a shared successor table: the same as their expanded form."""

from __future__ import annotations

import torch
from ranking_checks import assert_same_ranking

from index.exact import ExactIndex
from index.exclusion import MIN_DENSE_CHUNK, top_k_excluding
from index.extra import SharedRowScores
from models.transitions import ItemTransitions


def _shared(seed: int = 0, users: int = 9, items: int = 30, past: int = 3) -> SharedRowScores:
    gen = torch.Generator().manual_seed(seed)
    sources = torch.randint(-1, 12, (users, 4), generator=gen)
    weights = torch.rand(users, 4, generator=gen)
    rows = torch.randint(-1, items + past, (12, 6), generator=gen).int()  # some off the matrix
    values = torch.rand(12, 6, generator=gen)
    return SharedRowScores(sources, weights, rows, values, scale=3.5)


def test_add_to_equals_the_expanded_scores_to_the_bit() -> None:
    """Scattering from the table adds exactly what the expanded pairs add."""
    shared = _shared()
    base = torch.randn(9, 30, generator=torch.Generator().manual_seed(1))
    direct, expanded = base.clone(), base.clone()
    shared.add_to(direct)
    shared.expand().add_to(expanded)
    torch.testing.assert_close(direct, expanded)


def test_a_slice_adds_its_users_rows() -> None:
    """A slice scatters the rows of its users only, through the shared table."""
    shared = _shared()
    whole = torch.zeros(9, 30)
    shared.add_to(whole)
    part = torch.zeros(4, 30)
    shared.slice(3, 7).add_to(part)
    torch.testing.assert_close(part, whole[3:7])


def test_ranking_with_the_shared_form_equals_the_expanded_form() -> None:
    """Dense (in chunks) and searched rankings are the same under either form."""
    gen = torch.Generator().manual_seed(2)
    users, items = 3 * MIN_DENSE_CHUNK + 1, 30
    shared = _shared(3, users, items, past=0)  # a search scores every extra row
    vectors, queries = torch.randn(items, 8, generator=gen), torch.randn(users, 8, generator=gen)
    seen = torch.randint(-1, items, (users, 5), generator=gen)
    counts = (seen >= 0).sum(1)
    for budget in (1 << 20, MIN_DENSE_CHUNK * items, 0):
        index = ExactIndex(dense_budget=budget)
        index.refresh(vectors, torch.arange(items))
        got = top_k_excluding(index, queries, seen, counts, 7, extra=shared)
        want = top_k_excluding(index, queries, seen, counts, 7, extra=shared.expand())
        assert_same_ranking(got.rows, got.scores, want.rows, want.scores)


def test_table_factors_expand_to_the_candidates() -> None:
    """`ItemTransitions.factors`, expanded, are `candidates` within float tolerance."""
    table = ItemTransitions(slots=4, window=3, decay=0.8, device=torch.device("cpu"))
    gen = torch.Generator().manual_seed(4)
    table.add(
        torch.randint(0, 10, (60,), generator=gen),
        torch.randint(0, 10, (60,), generator=gen),
        torch.rand(60, generator=gen),
    )
    recent = torch.randint(-1, 10, (5, 4), generator=gen)
    recency = torch.arange(4).expand_as(recent)
    rows, share = table.candidates(recent, recency)
    expanded = SharedRowScores(*table.factors(recent, recency)).expand()
    assert torch.equal(expanded.rows, rows)
    assert torch.equal(expanded.values, share)
