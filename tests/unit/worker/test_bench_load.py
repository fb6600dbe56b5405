"""The latency runs' load has the outside load's shape: uniform users, every item live."""

from __future__ import annotations

import io

import numpy as np

from worker.tools.bench.load import ITEMS, USERS, ZIPF, draw, write_csv, zipf_weights


def test_users_are_uniform_over_twenty_thousand() -> None:
    """Every user id is in range and each user's count is within 4 sd of the uniform mean."""
    load = draw(400_000)
    counts = np.bincount(load.users, minlength=USERS)
    assert counts.shape[0] == USERS
    mean = load.users.shape[0] / USERS
    assert np.abs(counts - mean).max() < 4 * np.sqrt(mean) + 8  # ~20k counts: 4 sd plus the tail
    assert abs(counts.mean() - mean) < 1e-9


def test_items_are_bounded_zipf_and_every_item_is_live() -> None:
    """A long run clicks all 10,000 items, and popularity by rank falls as k^-0.9."""
    load = draw(1_000_000)
    assert load.items.min() >= 0
    assert load.items.max() < ITEMS
    counts = np.bincount(load.items, minlength=ITEMS)
    assert (counts > 0).all()
    by_rank = np.sort(counts)[::-1].astype(np.float64)
    top = zipf_weights(ITEMS, ZIPF)[0] * load.items.shape[0]
    assert abs(by_rank[0] - top) < 4 * np.sqrt(top)
    ranks = np.arange(1, 1001)
    slope = np.polyfit(np.log(ranks), np.log(by_rank[:1000]), 1)[0]
    assert abs(slope + ZIPF) < 0.05


def test_popular_items_are_spread_over_the_ids() -> None:
    """The most clicked item is not simply id 0: ranks are shuffled onto ids."""
    load = draw(100_000)
    counts = np.bincount(load.items, minlength=ITEMS)
    assert set(np.argsort(counts)[::-1][:10].tolist()) != set(range(10))


def test_the_load_is_written_as_the_replay_csv() -> None:
    """One `u<user>,i<item>,<ts>` line per event, in order, stamped when it is offered."""
    load = draw(3)
    out = io.StringIO()
    write_csv(load, out, start=1_700_000_000.0, rate=4.0)
    lines = out.getvalue().splitlines()
    pairs = zip(load.users.tolist(), load.items.tolist(), strict=True)
    stamps = ["1700000000.0000", "1700000000.2500", "1700000000.5000"]
    assert lines == [f"u{u},i{i},{ts}" for ts, (u, i) in zip(stamps, pairs, strict=True)]


def test_weights_sum_to_one_for_an_exponent_below_one() -> None:
    """A bounded Zipf is a distribution for exponents numpy's own `zipf` refuses."""
    weights = zipf_weights(10, 0.5)
    assert abs(weights.sum() - 1.0) < 1e-12
    assert (np.diff(weights) < 0).all()
