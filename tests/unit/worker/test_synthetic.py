"""Unit tests for `generate_clustered`: shape, seeds, exploration and the drift."""

from __future__ import annotations

import numpy as np
import pytest

from worker.testing.synthetic import SyntheticStream, generate_clustered


def _liked(taste: np.ndarray) -> list[set[int]]:
    return [set(np.flatnonzero(row).tolist()) for row in taste]


def _in_taste(stream: SyntheticStream, taste: np.ndarray, events: slice) -> float:
    """The fraction of `events` whose item's cluster the user likes in `taste`."""
    users, clusters = stream.users[events], stream.item_genre[stream.items[events]]
    return float((taste[users, clusters] > 0).mean())


def test_shape_and_ranges() -> None:
    """Arrays of the asked length, codes in range, evenly dealt clusters, 1-3 liked per user."""
    stream = generate_clustered(5_000, users=80, items=100, clusters=10, seed=1)
    assert stream.users.shape == stream.items.shape == stream.ts.shape == (5_000,)
    assert stream.users.min() >= 0
    assert stream.users.max() < 80
    assert stream.items.min() >= 0
    assert stream.items.max() < 100
    assert np.all(np.diff(stream.ts) > 0)
    assert np.bincount(stream.item_genre, minlength=10).tolist() == [10] * 10
    assert stream.user_taste.shape == (80, 10)
    np.testing.assert_allclose(stream.user_taste.sum(axis=1), 1.0)
    assert {len(liked) for liked in _liked(stream.user_taste)} == {1, 2, 3}


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    """A seed always gives the same events; another seed gives other ones."""
    one = generate_clustered(3_000, users=50, items=60, seed=4)
    again = generate_clustered(3_000, users=50, items=60, seed=4)
    other = generate_clustered(3_000, users=50, items=60, seed=5)
    assert np.array_equal(one.users, again.users)
    assert np.array_equal(one.items, again.items)
    assert np.array_equal(one.user_taste, again.user_taste)
    assert not np.array_equal(one.items, other.items)


def test_tastes_move_to_new_clusters_at_the_drift_point_only() -> None:
    """Before the drift: the undrifted stream's events; after it, clusters never liked before."""
    drift = generate_clustered(40_000, users=100, items=200, seed=3, explore=0.1, drift_at=0.5)
    plain = generate_clustered(40_000, users=100, items=200, seed=3, explore=0.1, drift_at=None)
    assert drift.drift_index == 20_000
    assert plain.drift_index is None
    assert plain.user_taste_after is None
    assert drift.user_taste_after is not None
    before, after = slice(0, 20_000), slice(20_000, 40_000)
    assert np.array_equal(drift.items[before], plain.items[before])
    for old, new in zip(_liked(drift.user_taste), _liked(drift.user_taste_after), strict=True):
        assert len(old) == len(new)
        assert not old & new
    # Beside the 10% exploring clicks (which land in a liked cluster now and then), taste rules.
    assert _in_taste(drift, drift.user_taste, before) > 0.88
    assert _in_taste(drift, drift.user_taste_after, after) > 0.88
    assert _in_taste(drift, drift.user_taste, after) < 0.1
    assert _in_taste(plain, plain.user_taste, after) > 0.88


def test_exploration_spreads_clicks_over_the_catalogue() -> None:
    """With every click exploring, users click outside their clusters as often as chance has it."""
    stream = generate_clustered(20_000, users=50, items=100, clusters=10, explore=1.0, seed=2)
    share = _in_taste(stream, stream.user_taste, slice(0, 10_000))
    liked = np.mean([len(s) for s in _liked(stream.user_taste)]) / 10
    assert share == pytest.approx(liked, abs=0.1)


def test_bad_arguments_are_refused() -> None:
    """An exploration share outside [0, 1], a drift outside (0, 1) or too few clusters fail."""
    with pytest.raises(ValueError, match="explore"):
        generate_clustered(10, explore=1.5)
    with pytest.raises(ValueError, match="drift_at"):
        generate_clustered(10, drift_at=1.0)
    with pytest.raises(ValueError, match="clusters"):
        generate_clustered(10, clusters=4)
