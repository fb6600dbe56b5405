"""The exact index's search over the items of largest norm first (`index.norm_prefix`)."""

from __future__ import annotations

import pytest
import torch
from ranking_checks import assert_same_ranking

from index import exclusion, norm_prefix
from index.exact import ExactIndex
from index.exclusion import top_k_excluding
from index.norm_prefix import MOST_UNSETTLED, NormPrefixCache, pair_scores, prefix_size

ITEMS, DIM, USERS, K = 4096, 16, 300, 20


def _skewed_items(seed: int = 0) -> torch.Tensor:
    """Vectors whose norms spread as learned ones do: a few long, most short."""
    draw = torch.Generator().manual_seed(seed)
    directions = torch.randn(ITEMS, DIM, generator=draw)
    lengths = torch.rand(ITEMS, 1, generator=draw).pow(4) * 5 + 0.1
    return directions * lengths


def _index(items: torch.Tensor) -> ExactIndex:
    index = ExactIndex()
    index.refresh(items, torch.arange(items.shape[0]))
    return index


def _brute_force(
    items: torch.Tensor, queries: torch.Tensor, seen: torch.Tensor, unavailable: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    scores = queries @ items.T
    for user, rows in enumerate(seen.tolist()):
        scores[user, [row for row in rows if row >= 0]] = float("-inf")
    scores[:, unavailable] = float("-inf")
    top = scores.topk(K, dim=1)
    return top.indices, top.values


def _two_tier_items(seed: int = 0) -> torch.Tensor:
    """300 long items and the rest short: a prefix of 512 settles nearly every user."""
    draw = torch.Generator().manual_seed(seed)
    items = torch.randn(ITEMS, DIM, generator=draw)
    items = items / torch.linalg.vector_norm(items, dim=1, keepdim=True)
    lengths = torch.rand(ITEMS, generator=draw) * 0.9 + 0.1
    lengths[torch.randperm(ITEMS, generator=draw)[:300]] = 10.0
    return items * lengths.unsqueeze(1)


def test_matches_a_brute_force_search_with_seen_unavailable_and_neighbours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lists, scores and the neighbours' inner products are those of a full search.

    Most users are settled by the prefix; three have seen all of it and are not, so
    both paths' lists are joined, over more users than one step of the prefix takes.
    """
    items = _two_tier_items()
    users = 2_100  # more than one step (DENSE_CHUNK_BUDGET // 512 = 2,048 users)
    draw = torch.Generator().manual_seed(1)
    queries = torch.randn(users, DIM, generator=draw)
    index = _index(items)
    prefix = index.norm_prefix(K)
    assert prefix is not None
    size = prefix.rows.shape[0]
    seen = torch.randint(-1, ITEMS, (users, size), generator=draw)
    seen[:, 12:] = -1
    seen[:, :6] = prefix.rows[torch.randint(0, size, (users, 6), generator=draw)]
    seen[:3] = prefix.rows  # these three have seen the whole prefix: left unsettled
    unavailable = torch.rand(ITEMS, generator=draw) < 0.05
    also = torch.randint(0, ITEMS, (users, 30), generator=draw)
    left: list[torch.Tensor] = []
    real = exclusion.unsettled

    def spy(queries: torch.Tensor, kth: torch.Tensor, bound: float) -> torch.Tensor:
        mask = real(queries, kth, bound)
        left.append(mask)
        return mask

    monkeypatch.setattr(exclusion, "unsettled", spy)
    top = top_k_excluding(
        index, queries, seen, (seen >= 0).sum(1), K, unavailable=unavailable, also=also
    )
    [mask] = left
    assert mask[:3].all()
    assert 0 < int(mask.sum()) < users // 10  # nearly every user settled by the prefix
    want_rows, want_scores = _brute_force(items, queries, seen, unavailable)
    assert_same_ranking(top.rows, top.scores, want_rows, want_scores)
    assert top.also is not None
    torch.testing.assert_close(top.also, (queries.unsqueeze(1) * items[also]).sum(2))


def test_a_user_whose_best_items_are_short_gets_the_whole_catalogue() -> None:
    """Items outside the prefix still reach a user whose query only they point along."""
    items = _skewed_items()
    size = prefix_size(K, ITEMS)
    longest = torch.linalg.vector_norm(items, dim=1).argsort(descending=True)
    short = longest[-K:]  # the shortest items: outside any prefix
    items[:, 0] = 0.0
    items[short] = 0.0
    items[short, 0] = torch.linspace(0.05, 0.1, K)  # alone along the first axis
    query = torch.zeros(1, DIM)
    query[0, 0] = 1.0
    index = _index(items)
    prefix = index.norm_prefix(K)
    assert prefix is not None
    assert not bool(torch.isin(short, prefix.rows[:size]).any())
    nothing_seen = torch.full((1, 1), -1)
    top = top_k_excluding(index, query, nothing_seen, torch.zeros(1, dtype=torch.int64), K)
    assert set(top.rows[0].tolist()) == set(short.tolist())


def test_pair_scores_are_inner_products_across_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """One inner product per (user, row) pair, whatever the step the pairs are cut into."""
    monkeypatch.setattr(norm_prefix, "PAIR_CHUNK", 7)
    draw = torch.Generator().manual_seed(2)
    queries, items = torch.randn(5, DIM, generator=draw), torch.randn(50, DIM, generator=draw)
    users = torch.randint(0, 5, (23,), generator=draw)
    rows = torch.randint(0, 50, (23,), generator=draw)
    got = pair_scores(queries, items, users, rows)
    torch.testing.assert_close(got, (queries[users] * items[rows]).sum(1))


def test_a_catalogue_too_small_to_prune_is_searched_whole() -> None:
    """Below four prefixes' worth of items there is no prefix: the dense search as before."""
    assert prefix_size(K, 4 * prefix_size(K, 10**6) - 1) == 0
    small = _index(torch.randn(1000, DIM))
    assert small.norm_prefix(K) is None


def test_the_cache_rebuilds_on_a_new_version_and_rests_while_it_does_not_pay() -> None:
    """A prefix per version and size; offered every `RETRY_EVERY` versions while unpaying."""
    cache = NormPrefixCache()
    items = _skewed_items()
    first = cache.get(items, 1, 512)
    assert first is not None
    wider = cache.get(items, 1, 800)
    assert wider is not None
    assert cache.get(items, 1, 512) is first  # each size kept for the version
    first.note(1, 1)  # one user's search barely moves the share
    assert cache.unsettled_share < 0.001
    first.note(40_000, 40_000)  # most users left unsettled: the prefix cost more than it saved
    assert cache.unsettled_share > MOST_UNSETTLED
    offered = {v: prefix for v in range(2, 40) if (prefix := cache.get(items, v, 512))}
    assert list(offered) == [16, 32]  # the 16th and 32nd versions seen
    offered[32].note(0, 40_000)  # it paid this time: offered from now on
    assert all(cache.get(items, version, 512) for version in range(40, 60))
