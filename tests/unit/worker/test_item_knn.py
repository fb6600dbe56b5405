"""Unit tests for the item-kNN peer of `recstream eval`: planted transitions, counts, contract."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest

from worker.tools.evaluate.data import Stream, encode
from worker.tools.evaluate.knn import ItemKnn, KnnConfig
from worker.tools.evaluate.peers import MostPopular
from worker.tools.evaluate.protocol import SeenItems, evaluate
from worker.tools.replay import Interactions

pytest.importorskip("scipy")  # the `eval` extra's; the module imports it where it is used

A, B = 0, 1  # item codes of the planted pair


def _learn_pairs(knn: ItemKnn, rng: np.random.Generator, users: int) -> None:
    """Every user clicks some noise items, then A, then B, in batches of 7 events."""
    events: list[tuple[int, int]] = []
    for user in range(users):
        noise = rng.choice(np.arange(2, knn.n_items), size=3, replace=False)
        events += [(user, int(i)) for i in noise] + [(user, A), (user, B)]
    order = np.array(events, dtype=np.int64)
    for start in range(0, len(order), 7):
        chunk = order[start : start + 7]
        knn.learn(chunk[:, 0], chunk[:, 1], np.zeros(len(chunk)))


def test_after_a_the_item_that_always_follows_a_tops_the_list() -> None:
    """B follows A in every history: a new user who clicked A gets B first, in both modes."""
    for symmetric in (True, False):
        knn = ItemKnn(41, 30, KnnConfig(symmetric=symmetric))
        _learn_pairs(knn, np.random.default_rng(0), users=40)
        newcomer = np.array([40], dtype=np.int64)
        knn.learn(newcomer, np.array([A]), np.zeros(1))
        seen = SeenItems(41)
        seen.add(newcomer, np.array([A]))
        lists = knn.recommend(newcomer, seen, 5)
        assert lists[0, 0] == B
        assert A not in lists[0].tolist()  # seen items are left out


def test_directional_counts_only_go_forward() -> None:
    """Directional mode counts "A then B" and never "B then A"; symmetric mode counts both."""
    users, items = np.zeros(2, dtype=np.int64), np.array([A, B])
    directional = ItemKnn(1, 3, KnnConfig(symmetric=False))
    directional.learn(users, items, np.zeros(2))
    symmetric = ItemKnn(1, 3, KnnConfig(symmetric=True))
    symmetric.learn(users, items, np.zeros(2))
    assert directional.matrix()[A, B] == 1.0
    assert directional.matrix()[B, A] == 0.0
    assert symmetric.matrix()[B, A] == 1.0


def _reference_counts(
    users: np.ndarray, items: np.ndarray, config: KnnConfig
) -> dict[tuple[int, int], float]:
    """The counts by the definition, one event at a time."""
    history: dict[int, list[int]] = defaultdict(list)
    counts: dict[tuple[int, int], float] = defaultdict(float)
    for user, item in zip(users.tolist(), items.tolist(), strict=True):
        previous = history[user][::-1][: config.window]
        for distance, before in enumerate(previous, start=1):
            if before != item:
                counts[before, item] += config.decay ** (distance - 1)
                if config.symmetric:
                    counts[item, before] += config.decay ** (distance - 1)
        history[user].append(item)
    return counts


@pytest.mark.parametrize(("batch_size", "merge_every"), [(1, 3), (5, 16_384), (64, 50), (500, 7)])
def test_batched_counts_equal_the_one_event_at_a_time_definition(
    batch_size: int, merge_every: int
) -> None:
    """Whatever the batch and the buffer size, C and the histories match a per-event loop."""
    rng = np.random.default_rng(batch_size)
    users, items = rng.integers(0, 6, size=400), rng.integers(0, 12, size=400)
    config = KnnConfig(window=4, decay=0.5, recent=3, merge_every=merge_every)
    knn = ItemKnn(6, 12, config)
    for start in range(0, users.size, batch_size):
        stop = start + batch_size
        knn.learn(users[start:stop], items[start:stop], np.zeros(min(stop, users.size) - start))
    dense = knn.matrix().toarray()
    expected = np.zeros((12, 12))
    for (before, after), count in _reference_counts(users, items, config).items():
        expected[before, after] = count
    np.testing.assert_allclose(dense, expected)
    for user in range(6):
        mine = items[users == user][-4:].tolist()
        assert knn.history[user, -len(mine) :].tolist() == mine


def test_users_without_history_get_the_popular_list() -> None:
    """A user with no clicks, or none that co-occur, gets most-popular; unclicked items never."""
    rng = np.random.default_rng(1)
    users, items = rng.integers(0, 5, size=60), rng.integers(0, 8, size=60)
    knn, popular = ItemKnn(7, 10, KnnConfig()), MostPopular(10)
    knn.learn(users, items, np.zeros(60))
    popular.learn(users, items, np.zeros(60))
    knn.learn(np.array([6]), np.array([9]), np.zeros(1))  # item 9: co-occurs with nothing
    popular.learn(np.array([6]), np.array([9]), np.zeros(1))
    seen = SeenItems(7)
    seen.add(np.array([6]), np.array([9]))
    cold = knn.recommend(np.array([5, 6]), seen, 10)
    assert cold.tolist() == popular.recommend(np.array([5, 6]), seen, 10).tolist()
    assert 8 not in cold.tolist()  # item 8 was never clicked


def test_item_knn_beats_popularity_on_a_stream_of_fixed_sequences() -> None:
    """Users walk one of four item chains: the transition peer scores far above popularity."""
    rng = np.random.default_rng(2)
    chains = rng.permutation(40).reshape(4, 10)
    pairs = [(f"u{user}", f"i{chains[user % 4, step]}") for step in range(10) for user in range(60)]
    stream: Stream = encode(
        "chains",
        Interactions(
            [u for u, _ in pairs], [i for _, i in pairs], np.arange(len(pairs), dtype=np.float64)
        ),
    )
    knn = evaluate(stream, ItemKnn(stream.n_users, stream.n_items, KnnConfig()), 8)
    directional = ItemKnn(
        stream.n_users, stream.n_items, replace(KnnConfig(), symmetric=False, recent=1)
    )
    chain = evaluate(stream, directional, 8)
    popular = evaluate(stream, MostPopular(stream.n_items), 8)
    assert knn.headline.hr > 2 * popular.headline.hr
    assert chain.headline.hr > 0.8  # "after i comes j" is all there is to learn


def test_bad_window_is_refused() -> None:
    """A window or a query length under one is a ValueError."""
    with pytest.raises(ValueError, match="window"):
        ItemKnn(1, 1, KnnConfig(window=0))
