"""Trending leaders kept from the clicks folded in agree with a search of the whole catalogue."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models.prior import FLOOR
from models.trending import RELATIVE_FLOOR, Trending

CPU = torch.device("cpu")
ROWS = 60
K = 8


def _full_top(trending: Trending, rows: int, k: int) -> list[set[int]]:
    """Each scale's top `k` rows found over the whole catalogue, as sets of clicked rows."""
    tops = []
    for prior in trending.priors:
        mass = prior.log_mass[:rows]
        values, picked = mass.topk(k)
        tops.append({r for r, v in zip(picked.tolist(), values.tolist(), strict=True) if v > FLOOR})
    return tops


def _kth_masses(trending: Trending, rows: int, k: int) -> list[float]:
    return [float(p.log_mass[:rows].topk(k).values[-1]) for p in trending.priors]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "add", "add", "reset", "reset", "top", "jump"]),
            st.lists(st.integers(0, ROWS - 1), min_size=1, max_size=12),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_kept_leaders_and_peaks_match_a_full_search(steps: list[tuple[str, list[int]]]) -> None:
    """Through clicks, resets and rebases, kept leaders equal a full top-k (up to ties)."""
    trending = Trending((5.0, math.inf), CPU)
    now = 0.0
    for action, rows in steps:
        items = torch.tensor(rows, dtype=torch.int64)
        if action == "reset":
            trending.reset(items)
        elif action in ("add", "jump"):
            now += 1000.0 if action == "jump" else 1.0  # a jump forces a rebase at tau 5
            trending.add(items, torch.ones(items.numel()), now, ROWS)
        top = trending.top(ROWS, K)
        full = _full_top(trending, ROWS, K)
        kth = _kth_masses(trending, ROWS, K)
        for n, prior in enumerate(trending.priors):
            listed = {r for r in top[n].tolist() if r >= 0}
            # Same leaders up to ties at the k-th mass: every listed row scores at least it.
            assert len(listed) == len(full[n])
            assert all(float(prior.log_mass[r]) >= kth[n] - 1e-9 for r in listed)
            tied = {r for r in listed if abs(float(prior.log_mass[r]) - kth[n]) < 1e-9}
            assert listed - full[n] <= tied
        relative = trending.relative_log_mass(torch.arange(ROWS), ROWS)
        mass = torch.stack([p.log_mass[:ROWS] for p in trending.priors], -1)
        expected = (mass - mass.max(0).values).clamp(min=RELATIVE_FLOOR)
        expected = expected.masked_fill(mass <= FLOOR, RELATIVE_FLOOR)
        np.testing.assert_allclose(relative.numpy(), expected.numpy(), atol=1e-5)
