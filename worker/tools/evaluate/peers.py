"""Reference methods scored beside the Engine: popularity, ISGD and periodically retrained ALS.

Evaluation tools, not production models: plain numpy (and implicit's CPU ALS),
held to the same lists-then-learn contract as the Engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from worker.tools.evaluate.data import IntArray
from worker.tools.evaluate.protocol import SeenItems, top_k


def _popular_lists(
    counts: npt.NDArray[np.float64], users: IntArray, seen: SeenItems, k: int
) -> IntArray:
    """Top-`k` by count for each user, seen and never-counted items left out."""
    # Only the first k + (most seen by any of these users) items by count can make a list.
    reach = min(counts.size, k + seen.count(users))
    order = np.argsort(-counts, kind="stable")[:reach]
    scores = np.where(counts[order] > 0, counts[order], -np.inf)
    exclude = seen.mask(users, counts.size)[:, order]
    best = top_k(np.broadcast_to(scores, exclude.shape), exclude, k)
    return np.where(best >= 0, order[np.maximum(best, 0)], -1)


class MostPopular:
    """All-time click counts: the floor any personal model has to clear."""

    name = "most-popular"

    def __init__(self, n_items: int) -> None:
        """Zero counts over the stream's item codes."""
        self.counts = np.zeros(n_items, dtype=np.float64)

    def recommend(self, users: IntArray, seen: SeenItems, k: int) -> IntArray:
        """The most clicked items the user has not clicked."""
        return _popular_lists(self.counts, users, seen, k)

    def learn(self, users: IntArray, items: IntArray, ts: npt.NDArray[np.float64]) -> None:  # noqa: ARG002
        """Count the batch's clicks."""
        np.add.at(self.counts, items, 1.0)


class RecentPopular:
    """Counts over the last `window` events: popularity that follows trends."""

    def __init__(self, n_items: int, window: int) -> None:
        """Zero counts; `window` events are remembered."""
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.name = f"recent-popular (last {window:,})"
        self.window = window
        self.counts = np.zeros(n_items, dtype=np.float64)
        self._items = np.empty(0, dtype=np.int64)

    def recommend(self, users: IntArray, seen: SeenItems, k: int) -> IntArray:
        """The items most clicked lately that the user has not clicked."""
        return _popular_lists(self.counts, users, seen, k)

    def learn(self, users: IntArray, items: IntArray, ts: npt.NDArray[np.float64]) -> None:  # noqa: ARG002
        """Count the batch in and the events that left the window out."""
        np.add.at(self.counts, items, 1.0)
        kept = np.concatenate([self._items, items])
        np.add.at(self.counts, kept[: max(0, kept.size - self.window)], -1.0)
        self._items = kept[-self.window :]


@dataclass(frozen=True)
class IsgdConfig:
    """ISGD's hyper-parameters (Vinagre, Jorge and Gama 2014)."""

    factors: int = 10
    learning_rate: float = 0.05
    regularization: float = 0.01
    init_std: float = 0.1
    seed: int = 0


class Isgd:
    """Incremental SGD matrix factorisation on positive-only feedback, one event at a time.

    Each click (u, i) moves A_u and B_i toward A_u . B_i = 1 (no negatives), as in
    "Fast incremental matrix factorization for recommendation with positive-only
    feedback" (UMAP 2014). Items the model has not seen yet are not recommended;
    users it has not learned yet get the popular list (their cold start, as every
    method here has one).
    """

    name = "ISGD"

    def __init__(self, n_users: int, n_items: int, config: IsgdConfig) -> None:
        """Random starting vectors for every code; each is used from its first click on."""
        rng = np.random.default_rng(config.seed)
        self.config = config
        self.user_vecs = rng.normal(0.0, config.init_std, (n_users, config.factors))
        self.item_vecs = rng.normal(0.0, config.init_std, (n_items, config.factors))
        self.known_items = np.zeros(n_items, dtype=bool)
        self.known_users = np.zeros(n_users, dtype=bool)
        self.popular = MostPopular(n_items)

    def recommend(self, users: IntArray, seen: SeenItems, k: int) -> IntArray:
        """Items by A_u . B_i, seen and unknown items left out; popular for unknown users."""
        lists = self.popular.recommend(users, seen, k)
        known = self.known_users[users]
        if known.any():
            rows = users[known]
            scores = self.user_vecs[rows] @ self.item_vecs.T
            exclude = seen.mask(rows, self.known_items.size) | ~self.known_items
            lists[known] = top_k(scores, exclude, k)
        return lists

    def learn(self, users: IntArray, items: IntArray, ts: npt.NDArray[np.float64]) -> None:
        """The per-event SGD updates, in stream order."""
        lr, reg = self.config.learning_rate, self.config.regularization
        user_vecs, item_vecs = self.user_vecs, self.item_vecs
        for user, item in zip(users.tolist(), items.tolist(), strict=True):
            a, b = user_vecs[user], item_vecs[item]
            err = 1.0 - float(a @ b)
            a_new = a + lr * (err * b - reg * a)
            item_vecs[item] = b + lr * (err * a - reg * b)
            user_vecs[user] = a_new
        self.known_items[items] = True
        self.known_users[users] = True
        self.popular.learn(users, items, ts)


@dataclass(frozen=True)
class AlsConfig:
    """implicit's ALS and how often it is refitted."""

    every: int = 10_000
    factors: int = 64
    iterations: int = 15
    regularization: float = 0.01
    alpha: float = 1.0
    threads: int = 2
    seed: int = 0


class PeriodicAls:
    """implicit's CPU ALS refitted on the whole history every `every` events: a batch model.

    Between refits it ranks with the latest fit; users and items that fit has not
    seen fall back to all-time popularity.
    """

    def __init__(self, n_users: int, n_items: int, config: AlsConfig) -> None:
        """Nothing fitted yet: everyone gets the popular list until the first refit."""
        if config.every < 1:
            raise ValueError(f"every must be >= 1, got {config.every}")
        self.name = f"ALS (refit every {config.every:,})"
        self.config = config
        self.shape = (n_users, n_items)
        self.popular = MostPopular(n_items)
        self._users: list[IntArray] = []
        self._items: list[IntArray] = []
        self._events = 0
        self._next_fit = config.every
        self.user_factors: npt.NDArray[np.float32] | None = None
        self.item_factors: npt.NDArray[np.float32] | None = None
        self.fitted_users = np.zeros(n_users, dtype=bool)
        self.fitted_items = np.zeros(n_items, dtype=bool)
        self.fits = 0

    def recommend(self, users: IntArray, seen: SeenItems, k: int) -> IntArray:
        """Latest fit's lists for users it knows, popular lists for the rest."""
        lists = self.popular.recommend(users, seen, k)
        known = self.fitted_users[users]
        if self.user_factors is None or self.item_factors is None or not known.any():
            return lists
        rows = users[known]
        scores = self.user_factors[rows] @ self.item_factors.T
        exclude = seen.mask(rows, self.shape[1]) | ~self.fitted_items
        lists[known] = top_k(scores, exclude, k)
        return lists

    def learn(self, users: IntArray, items: IntArray, ts: npt.NDArray[np.float64]) -> None:
        """Keep the history; refit once another `every` events have arrived."""
        self.popular.learn(users, items, ts)
        self._users.append(users)
        self._items.append(items)
        self._events += users.size
        if self._events >= self._next_fit:
            self._fit()
            self._next_fit = (self._events // self.config.every + 1) * self.config.every

    def _fit(self) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from scipy.sparse import coo_matrix
        from threadpoolctl import threadpool_limits

        users, items = np.concatenate(self._users), np.concatenate(self._items)
        self._users, self._items = [users], [items]
        counts = coo_matrix(
            (np.ones(users.size, dtype=np.float32), (users, items)), shape=self.shape
        ).tocsr()  # duplicates summed: repeat clicks raise the confidence
        cfg = self.config
        with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, BLAS on one
            model = AlternatingLeastSquares(
                factors=cfg.factors,
                regularization=cfg.regularization,
                alpha=cfg.alpha,
                iterations=cfg.iterations,
                num_threads=cfg.threads,
                random_state=cfg.seed,
            )
            model.fit(counts, show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        self.fitted_users[users] = True
        self.fitted_items[items] = True
        self.fits += 1
