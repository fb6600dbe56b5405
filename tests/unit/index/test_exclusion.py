"""Unit tests for `index.exclusion.top_k_excluding` over the exact index."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from ranking_checks import assert_same_ranking

from index import exclusion
from index.exact import ExactIndex
from index.exclusion import TopK, top_k_excluding
from models.history import SeenHistory

CPU = torch.device("cpu")


def _seen(
    rows_per_query: list[list[int]], device: torch.device = CPU
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seen rows as `SeenHistory.seen` lays them out: `-1` padded, at least one column wide."""
    width = max(1, *(len(rows) for rows in rows_per_query))
    seen = torch.full((len(rows_per_query), width), -1, dtype=torch.int64)
    for n, rows in enumerate(rows_per_query):
        seen[n, : len(rows)] = torch.tensor(rows, dtype=torch.int64)
    counts = torch.tensor([len(rows) for rows in rows_per_query], dtype=torch.int64)
    return seen.to(device), counts.to(device)


# Both exclusion paths: a masked dense score matrix, and a widened k-NN search.
PATHS = pytest.mark.parametrize("dense", [True, False], ids=["dense", "search"])


def _index(items: torch.Tensor, dense: bool = True) -> ExactIndex:
    index = ExactIndex(dense_budget=1 << 30 if dense else 0)
    index.refresh(items, torch.arange(items.shape[0], device=items.device))
    return index


def _assert_well_formed(top: TopK, k: int) -> None:
    """At most k real rows, unique, best first, padding only at the end."""
    assert top.rows.shape == top.scores.shape
    assert top.rows.shape[1] == k
    for rows, scores, valid in zip(top.rows, top.scores, top.valid, strict=True):
        real = rows[valid].tolist()
        assert len(set(real)) == len(real)
        assert valid.tolist() == [True] * len(real) + [False] * (k - len(real))
        assert (scores[~valid] == float("-inf")).all()
        assert (scores[:-1] >= scores[1:]).all()


@PATHS
def test_never_returns_a_seen_item(dense: bool, device: torch.device) -> None:
    """Seen rows are left out and the next best fill in, k per query."""
    items = torch.eye(6) * torch.arange(6, 0, -1).float().unsqueeze(1)
    items = items.to(device)
    queries = torch.ones(2, 6, device=device)
    seen, counts = _seen([[0, 2], [5]], device)
    top = top_k_excluding(_index(items, dense), queries, seen, counts, k=3)
    _assert_well_formed(top, 3)
    assert top.rows.tolist() == [[1, 3, 4], [0, 1, 2]]
    assert top.scores.tolist() == [[5.0, 3.0, 2.0], [6.0, 5.0, 4.0]]


@PATHS
def test_pads_when_too_few_items_remain(dense: bool, device: torch.device) -> None:
    """With fewer unseen items than k, the tail is row -1 with score -inf."""
    items = torch.eye(4)
    items = items.to(device)
    queries = torch.ones(1, 4, device=device)
    seen, counts = _seen([[1, 3]], device)
    top = top_k_excluding(_index(items, dense), queries, seen, counts, k=5)
    _assert_well_formed(top, 5)
    assert sorted(top.rows[0, :2].tolist()) == [0, 2]
    assert top.rows[0, 2:].tolist() == [-1, -1, -1]
    assert torch.isinf(top.scores[0, 2:]).all()
    assert top.valid.sum().item() == 2


@PATHS
def test_everything_seen_gives_only_padding(dense: bool, device: torch.device) -> None:
    """A user who has seen the whole catalogue gets no rows at all."""
    items = torch.eye(3)
    items = items.to(device)
    seen, counts = _seen([[0, 1, 2]], device)
    top = top_k_excluding(_index(items, dense), torch.ones(1, 3, device=device), seen, counts, k=2)
    assert top.rows.tolist() == [[-1, -1]]
    assert top.scores.tolist() == [[float("-inf"), float("-inf")]]


@PATHS
def test_unavailable_items_are_never_returned(dense: bool, device: torch.device) -> None:
    """Rows flagged in `unavailable` are left out for every query."""
    items = torch.eye(5) * torch.arange(5, 0, -1).float().unsqueeze(1)
    items = items.to(device)
    queries = torch.ones(2, 5, device=device)
    seen, counts = _seen([[], [1]], device)
    unavailable = torch.tensor([True, False, False, True, False], device=device)
    top = top_k_excluding(_index(items, dense), queries, seen, counts, k=5, unavailable=unavailable)
    _assert_well_formed(top, 5)
    for rows in top.rows.tolist():
        assert 0 not in rows
        assert 3 not in rows
    assert top.rows[0, :3].tolist() == [1, 2, 4]
    assert top.rows[1, :2].tolist() == [2, 4]


@PATHS
def test_unavailable_items_do_not_shorten_the_list(dense: bool, device: torch.device) -> None:
    """Masking the best rows still leaves k results when k available items remain."""
    items = torch.eye(10) * torch.arange(10, 0, -1).float().unsqueeze(1)
    items = items.to(device)
    seen, counts = _seen([[]], device)
    unavailable = torch.zeros(10, dtype=torch.bool, device=device)
    unavailable[:2] = True
    top = top_k_excluding(
        _index(items, dense),
        torch.ones(1, 10, device=device),
        seen,
        counts,
        k=2,
        unavailable=unavailable,
    )
    assert top.rows.tolist() == [[2, 3]]


def test_empty_batch() -> None:
    """No queries give an empty (0, k) result."""
    items = torch.eye(3)
    seen, counts = _seen([[]])
    top = top_k_excluding(_index(items), torch.empty(0, 3), seen[:0], counts[:0], k=4)
    assert top.rows.shape == (0, 4)
    assert top.scores.shape == (0, 4)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_matches_a_brute_force_reference(data: st.DataObject) -> None:
    """Scores returned equal the best k unseen scores, as a multiset, for random catalogues."""
    n = data.draw(st.integers(1, 40), label="items")
    k = data.draw(st.integers(1, 10), label="k")
    batch = data.draw(st.integers(1, 3), label="queries")
    values = st.floats(-4, 4, allow_nan=False, width=32)
    items_np = np.array(data.draw(st.lists(values, min_size=n * 4, max_size=n * 4)))
    queries_np = np.array(data.draw(st.lists(values, min_size=batch * 4, max_size=batch * 4)))
    items = torch.tensor(items_np, dtype=torch.float32).reshape(n, 4)
    queries = torch.tensor(queries_np, dtype=torch.float32).reshape(batch, 4)
    seen_sets = [
        data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n), label=f"seen{q}")
        for q in range(batch)
    ]
    seen, counts = _seen(seen_sets)
    top = top_k_excluding(
        _index(items, data.draw(st.booleans(), label="dense")), queries, seen, counts, k
    )
    _assert_well_formed(top, k)
    all_scores = queries.double() @ items.double().T
    for q in range(batch):
        unseen = [row for row in range(n) if row not in seen_sets[q]]
        expected = sorted((all_scores[q, unseen].tolist()), reverse=True)[:k]
        valid = top.valid[q]
        rows = top.rows[q][valid].tolist()
        assert len(rows) == len(expected)
        assert not set(rows) & set(seen_sets[q])
        got = top.scores[q][valid].double()
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(all_scores[q, rows].numpy(), got.numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_returns_at_most_k(k: int) -> None:
    """The result is exactly k wide whatever the catalogue and history sizes."""
    generator = torch.Generator().manual_seed(k)
    items = torch.randn(20, 4, generator=generator)
    queries = torch.randn(4, 4, generator=generator)
    seen, counts = _seen([[], [0, 1, 2, 3, 4, 5, 6], [19], list(range(15))])
    top = top_k_excluding(_index(items, dense=False), queries, seen, counts, k)
    _assert_well_formed(top, k)
    assert top.valid[:3].all()
    assert top.valid[3].sum().item() == min(k, 5)


def test_history_exclusion_never_lists_a_seen_item(device: torch.device) -> None:
    """Items in a user's `SeenHistory` never reach their list, on any device."""
    gen = torch.Generator().manual_seed(2)
    items = torch.randn(500, 9, generator=gen).to(device)
    history = SeenHistory(64, device)
    users = torch.randint(0, 30, (2000,), generator=gen).to(device)
    clicked = torch.randint(0, 500, (2000,), generator=gen).to(device)
    history.add(users, clicked, torch.zeros(2000, device=device))
    index = ExactIndex()
    index.refresh(items, torch.arange(500, device=device))
    touched = torch.unique(users)
    queries = torch.randn(touched.numel(), 9, generator=gen).to(device)
    seen = history.seen(touched)
    top = top_k_excluding(index, queries, seen, history.seen_counts(touched), 20)
    assert top.rows.device.type == device.type
    assert (top.rows >= 0).all()
    assert not (top.rows[:, :, None] == seen[:, None, :]).any()
    assert (top.scores[:, :-1] >= top.scores[:, 1:]).all()


def test_a_batch_ranked_in_dense_chunks_equals_one_dense_pass() -> None:
    """Too many users for one dense matrix: ranked chunk by chunk, the lists are the same."""
    from index.exclusion import MIN_DENSE_CHUNK

    gen = torch.Generator().manual_seed(3)
    items, users, k = 40, 5 * MIN_DENSE_CHUNK + 3, 7
    vectors, queries = torch.randn(items, 8, generator=gen), torch.randn(users, 8, generator=gen)
    seen, counts = _seen([list(range(n % 6)) for n in range(users)])
    unavailable = torch.zeros(items, dtype=torch.bool)
    unavailable[[3, 17]] = True
    whole = top_k_excluding(_index(vectors), queries, seen, counts, k, unavailable)
    chunked_index = ExactIndex(dense_budget=MIN_DENSE_CHUNK * items)
    chunked_index.refresh(vectors, torch.arange(items))
    chunked = top_k_excluding(chunked_index, queries, seen, counts, k, unavailable)
    assert_same_ranking(chunked.rows, chunked.scores, whole.rows, whole.scores)


def test_dense_chunks_are_cache_sized_on_a_cpu_and_larger_on_an_accelerator() -> None:
    """A CPU chunk fits its cache (4 MiB of floats); an accelerator's is 16x larger or more."""
    from index.exclusion import dense_chunk_budget

    cpu = dense_chunk_budget(torch.device("cpu"))
    assert cpu * 4 == 4 << 20
    assert dense_chunk_budget(torch.device("cuda")) >= 16 * cpu
    assert dense_chunk_budget(torch.device("meta")) >= 16 * cpu


def test_a_capped_widening_fetches_at_most_k_plus_the_cap() -> None:
    """A long history no longer widens the search past `k + most_widen`; seen rows stay out."""
    items = torch.randn(200, 8, generator=torch.Generator().manual_seed(3))
    index = _index(items, dense=False)
    asked: list[int] = []
    search = index.search

    def counting(queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        asked.append(k)
        return search(queries, k)

    index.search = counting  # type: ignore[method-assign]
    queries = torch.randn(3, 8, generator=torch.Generator().manual_seed(4))
    seen, counts = _seen([list(range(0, 150, 2)), [1], []])
    top = top_k_excluding(index, queries, seen, counts, k=10, most_widen=5)
    assert asked[0] == 15
    _assert_well_formed(top, 10)
    assert top.valid.all()  # a user the capped search left short was searched again
    assert asked[1:] in ([], [10 + 75])  # ...in full, and only if one was short
    for rows, held in zip(top.rows.tolist(), seen.tolist(), strict=True):
        assert not set(rows) & (set(held) - {-1})
    top_k_excluding(index, queries, seen, counts, k=10)
    assert asked[-1] == 10 + 75  # uncapped: the longest history's count


def test_a_user_the_capped_search_left_short_is_searched_again_in_full() -> None:
    """Every item near the query seen: the capped search finds too few; the second fills k."""
    items = torch.eye(8).repeat(5, 1) * torch.arange(40, 0, -1).float().unsqueeze(1)
    index = _index(items, dense=False)
    query = torch.ones(1, 8)
    seen, counts = _seen([list(range(20))])  # the 20 best rows
    top = top_k_excluding(index, query, seen, counts, k=6, most_widen=2)
    assert top.rows.tolist() == [[20, 21, 22, 23, 24, 25]]


@PATHS
def test_rows_asked_beside_the_top_k_get_their_inner_products(
    dense: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`also` rows are scored off the dense matrices, seen ones included; a search gives None.

    Across chunks (a budget of a few users per chunk), and equal within float
    tolerance to the inner products a gather computes.
    """
    gen = torch.Generator().manual_seed(3)
    items, queries = torch.randn(300, 8, generator=gen), torch.randn(40, 8, generator=gen)
    index = ExactIndex(dense_budget=1 << 30 if dense else 0)
    index.refresh(items, torch.arange(300))
    also = torch.randint(0, 300, (40, 7), generator=gen)
    seen, counts = _seen([[int(also[n, 0])] for n in range(40)])
    monkeypatch.setattr(exclusion, "DENSE_CHUNK_BUDGET", 16 * 300)  # 16 users a chunk: three
    top = top_k_excluding(index, queries, seen, counts, 5, also=also)
    if not dense:
        assert top.also is None
        return
    assert top.also is not None
    expected = torch.einsum("bd,bcd->bc", queries, items[also])
    torch.testing.assert_close(top.also, expected, rtol=1e-5, atol=1e-5)
