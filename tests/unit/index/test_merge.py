"""Merging proposals per user: the vectorised merge against a plain Python one."""

from __future__ import annotations

import numpy as np
import torch

from index.candidates.merge import RADIX_FROM, best_at, flat_sort, member, merge_rows, sort_rows


def _reference(rows: np.ndarray, sums: np.ndarray, maxes: np.ndarray) -> list[dict[int, tuple]]:
    """Per user: row -> (summed values, maximised values), by dictionaries."""
    out: list[dict[int, tuple]] = []
    for u in range(rows.shape[0]):
        merged: dict[int, tuple] = {}
        for j, row in enumerate(rows[u]):
            if row < 0:
                continue
            s, m = merged.get(int(row), (np.zeros(sums.shape[2]), np.full(maxes.shape[2], -np.inf)))
            merged[int(row)] = (s + sums[u, j], np.maximum(m, maxes[u, j]))
        out.append(merged)
    return out


def test_merge_sums_and_maximises_over_repeats_per_user() -> None:
    """Each distinct row once, its values summed and maximised over its repeats."""
    gen = torch.Generator().manual_seed(0)
    rows = torch.randint(-1, 12, (7, 30), generator=gen)
    sums = torch.randn(7, 30, 3, generator=gen)
    maxes = torch.randn(7, 30, 2, generator=gen)
    out_rows, summed, maxed = merge_rows(rows, sums, maxes)
    expected = _reference(rows.numpy(), sums.numpy(), maxes.numpy())
    for u, merged in enumerate(expected):
        held = out_rows[u] >= 0
        assert out_rows[u][held].tolist() == sorted(merged), "each distinct row once, in order"
        for slot in held.nonzero().squeeze(1).tolist():
            row = int(out_rows[u, slot])
            expected_sum = merged[row][0]
            np.testing.assert_allclose(summed[u, slot].numpy(), expected_sum, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(maxed[u, slot].numpy(), merged[row][1], rtol=1e-6)
        assert (summed[u][~held] == 0).all()
        assert (maxed[u][~held] == 0).all()


def test_flat_sort_orders_each_row_like_a_row_sort() -> None:
    """One flat sort of (user, row) keys orders each row as a per-row sort does."""
    rows = torch.randint(-1, 1 << 20, (5, 64), generator=torch.Generator().manual_seed(1))
    ordered, order = sort_rows(rows)
    assert torch.equal(ordered, rows.sort(dim=1).values)
    assert torch.equal(rows.gather(1, order), ordered)


def test_best_at_points_at_the_chosen_rows() -> None:
    """The best rows, best first, with where each sat; -1 past the valid ones."""
    rows = torch.tensor([[5, -1, 7, 2], [3, 4, -1, -1]])
    scores = torch.tensor([[0.1, 9.0, 0.7, 0.3], [0.2, 0.5, 8.0, 1.0]])
    chosen, top, at = best_at(rows, scores, 3)
    assert chosen.tolist() == [[7, 2, 5], [4, 3, -1]]
    assert torch.equal(rows.gather(1, at)[:, :2], chosen[:, :2])
    assert top[1, 2] == -torch.inf


def test_member_ignores_padding() -> None:
    """Membership per user; -1 pads never match."""
    rows = torch.tensor([[1, 2, -1, 4]])
    sets = torch.tensor([[4, -1, 1]])
    assert member(rows, sets).tolist() == [[True, False, False, True]]


def test_sorting_rows_matches_a_per_row_sort_whatever_the_key_width() -> None:
    """32-bit keys where the users and the rows' bound fit, 64-bit past that: the same order."""
    gen = torch.Generator().manual_seed(4)
    cases = [(5, 7, 3), (1000, 31, 10_000), (2048, 5, (1 << 21) - 2), (4, 6, 1 << 30), (3, 4, -1)]
    for users, n, top in cases:
        if top < 0:
            rows = torch.full((users, n), -1)
        else:
            rows = torch.randint(-1, top + 1, (users, n), generator=gen)
            rows[0, 0] = top  # the largest row the bound allows
        for below in (None, top + 1):
            ordered, order = sort_rows(rows, below)
            assert ordered.dtype == torch.int64
            assert torch.equal(ordered, rows.sort(dim=1).values)
            assert torch.equal(rows.gather(1, order), ordered)


def test_flat_sort_agrees_with_torch_on_either_side_of_the_radix_length() -> None:
    """Below the length where torch sorts by radix numpy sorts, from it torch: the same keys."""
    gen = torch.Generator().manual_seed(7)
    for n in (0, 1, 1000, RADIX_FROM - 1, RADIX_FROM):
        for dtype in (torch.int32, torch.int64):
            keys = torch.randint(0, 1 << 20, (n,), generator=gen).to(dtype)
            ordered, order = flat_sort(keys)
            assert ordered.dtype == dtype
            assert order.dtype == torch.int64
            assert torch.equal(ordered, keys.sort().values)
            assert torch.equal(keys[order], ordered)
