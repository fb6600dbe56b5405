"""An online item-to-item transition peer: "clicked j, then i within the next few clicks".

The classic strong baseline for next-item recommendation (item-kNN over a
user's recent clicks). For every click i of a user, C[j, i] grows by
`decay ** (d - 1)` for each j among that user's previous `window` clicks, d
clicks back (and C[i, j] too when `symmetric`). A user's score for item i is
the sum over their last `recent` clicks j, the newest weighted most, of
C[j, i] / (pop_j ** beta * pop_i ** alpha): cosine-like when alpha = beta = 0.5.
A tiny popularity term breaks ties, so a user whose recent clicks co-occur with
nothing still gets the popular list, as an unknown user does.

The defaults were chosen on ml-100k at batch 32 (window 2/5/10/20/50, decay
0.5-1, last 5-50 clicks, alpha 0-0.75, beta 0-1, directional or symmetric;
HR@10 0.083 to 0.109, 0.093 for the cosine-like first guess): a long window
with a slow decay, symmetric counts, no candidate normalisation (alpha = 0:
MovieLens rewards popular items) and beta = 0.5.

Batches are folded in with numpy index arithmetic (no per-event Python loop);
C is a scipy CSR matrix plus a small buffer of new counts merged into it now
and then, so a 10k-item catalogue needs no dense n_items ** 2 matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from worker.tools.evaluate.data import IntArray
from worker.tools.evaluate.peers import MostPopular
from worker.tools.evaluate.protocol import SeenItems, top_k

if TYPE_CHECKING:  # scipy comes with the `eval` extra; imported where it is used
    from scipy import sparse

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class KnnConfig:
    """The co-occurrence window, the query and the normalisation."""

    window: int = 20  # previous clicks of the user each click is paired with
    decay: float = 0.9  # pair weight per click of distance: decay ** (d - 1)
    symmetric: bool = True  # count "j then i" as "i then j" too
    recent: int = 10  # last clicks of a user summed in the query
    recent_decay: float = 0.9  # query weight of the n-th newest click: recent_decay ** n
    alpha: float = 0.0  # candidate item normalisation: C[j, i] / pop_i ** alpha
    beta: float = 0.5  # query item normalisation: C[j, i] / pop_j ** beta
    popularity: float = 1e-6  # tie-break weight of pop_i / max pop
    merge_every: int = 16_384  # buffered counts folded into the CSR matrix at this many


def _group(users: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Stable order by user, each group's start in it, and each event's rank in its group."""
    order = np.argsort(users, kind="stable")
    ordered = users[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, ordered.size])
    rank = np.arange(ordered.size) - np.repeat(starts, sizes)
    return order, starts, rank


class ItemKnn:
    """Item-to-item co-occurrence within a short window of each user's clicks, scored online."""

    def __init__(self, n_users: int, n_items: int, config: KnnConfig | None = None) -> None:
        """No counts yet; every user's recent clicks empty."""
        from scipy import sparse

        config = config or KnnConfig()
        if config.window < 1 or config.recent < 1:
            raise ValueError(f"window and recent must be >= 1, got {config}")
        self.name = "item-kNN"
        self.config = config
        self.n_items = n_items
        self.popular = MostPopular(n_items)
        # Each user's last max(window, recent) clicks, newest in the last column; -1: none.
        self.history = np.full((n_users, max(config.window, config.recent)), -1, dtype=np.int64)
        self.counts: sparse.csr_matrix = sparse.csr_matrix((n_items, n_items), dtype=np.float64)
        self._pending: list[tuple[IntArray, IntArray, FloatArray]] = []
        self._pending_size = 0

    def recommend(self, users: IntArray, seen: SeenItems, k: int) -> IntArray:
        """Items by summed co-occurrence with the user's recent clicks, popular as the tie-break."""
        from scipy import sparse

        cfg = self.config
        pop = self.popular.counts
        recent = self.history[users, -cfg.recent :]
        valid = recent >= 0
        rows, cols = np.nonzero(valid)
        items = recent[rows, cols]
        weight = (
            cfg.recent_decay ** (cfg.recent - 1 - cols) / np.maximum(pop[items], 1.0) ** cfg.beta
        )
        query = sparse.csr_matrix((weight, (rows, items)), shape=(users.size, self.n_items))
        product = query @ self.counts
        if self._pending:
            product = product + query @ self._buffered()
        scores = np.asarray(product.todense())
        scores /= np.maximum(pop, 1.0) ** cfg.alpha
        if pop.size and pop.max() > 0:
            scores += cfg.popularity * pop / pop.max()
        exclude = seen.mask(users, self.n_items) | (pop <= 0)
        return top_k(scores, exclude, k)

    def learn(self, users: IntArray, items: IntArray, ts: FloatArray) -> None:
        """Pair each click with the user's previous `window` clicks, then move the histories on."""
        cfg = self.config
        self.popular.learn(users, items, ts)
        if users.size == 0:
            return
        order, starts, rank = _group(users)
        by_user, clicked = users[order], items[order]
        span = self.history.shape[1]
        back = np.arange(1, cfg.window + 1)
        # The click d back: earlier in this batch when the rank allows, else from the history.
        in_batch = rank[:, None] >= back
        from_batch = clicked[np.maximum(np.arange(clicked.size)[:, None] - back, 0)]
        column = np.minimum(span - back + rank[:, None], span - 1)
        from_history = self.history[by_user[:, None], column]
        previous = np.where(in_batch, from_batch, from_history)
        pair = (previous >= 0) & (previous != clicked[:, None])
        before = previous[pair]
        after = np.broadcast_to(clicked[:, None], previous.shape)[pair]
        weight = np.power(cfg.decay, back - 1.0, dtype=np.float64)[np.nonzero(pair)[1]]
        self._add(before, after, weight)
        if cfg.symmetric:
            self._add(after, before, weight)
        if self._pending_size >= cfg.merge_every:
            self.counts = self.matrix()
        # New history row: the last `span` of (old row, this batch's clicks of the user).
        sizes = np.diff(np.r_[starts, clicked.size])
        index = sizes[:, None] + np.arange(span)
        kept = self.history[by_user[starts][:, None], np.minimum(index, span - 1)]
        fresh = clicked[np.clip(starts[:, None] + index - span, 0, clicked.size - 1)]
        self.history[by_user[starts]] = np.where(index < span, kept, fresh)

    def matrix(self) -> sparse.csr_matrix:
        """C with every count so far: the merged matrix plus the buffer, which is emptied."""
        if self._pending:
            self.counts = self.counts + self._buffered()
            self._pending, self._pending_size = [], 0
        return self.counts

    def _buffered(self) -> sparse.csr_matrix:
        """The buffered counts as one CSR matrix (duplicates summed)."""
        from scipy import sparse

        before, after, weight = (np.concatenate(part) for part in zip(*self._pending, strict=True))
        self._pending = [(before, after, weight)]  # concatenated once, not at every batch
        shape = (self.n_items, self.n_items)
        return sparse.csr_matrix((weight, (before, after)), shape=shape)

    def _add(self, before: IntArray, after: IntArray, weight: FloatArray) -> None:
        self._pending.append((before, after, weight))
        self._pending_size += before.size
