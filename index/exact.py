"""Exact search straight over the live item matrix: always fresh, nothing to rebuild."""

from __future__ import annotations

import time

import torch

from index.errors import ItemIndexError
from index.knn import knn, row_scores
from index.norm_prefix import NormPrefix, NormPrefixCache, prefix_size

# Score-matrix elements below which masking a dense matrix beats a widened k-NN search:
# 16M floats is 64 MiB, and a k-NN search fetching k + seen candidates costs more.
DENSE_BUDGET = 1 << 24


class ExactIndex:
    """Brute-force inner-product search (FAISS on GPU or CPU) over the learner's matrix.

    Item updates are visible at the next search after `refresh` names their
    rows, with no swap: the right choice up to a few million items, where a
    fused GPU scan beats any approximate index that must be rebuilt to see new
    vectors. On a CPU its searches score the items of largest norm first
    (`norm_prefix`), whose copy is taken again whenever the version moves.
    """

    kind = "exact"

    def __init__(self, dense_budget: int | None = None) -> None:
        """Start empty; the first `refresh` makes it searchable."""
        self.dense_budget = DENSE_BUDGET if dense_budget is None else dense_budget
        self.version = 0
        self._items: torch.Tensor | None = None
        self._built_at = 0.0
        self._prefixes = NormPrefixCache()

    @property
    def built_at(self) -> float:
        """When the matrix was last refreshed."""
        return self._built_at

    def refresh(self, items: torch.Tensor, updated_rows: torch.Tensor) -> None:
        """Point at the current matrix; bump the version when rows changed."""
        self._items = items
        if updated_rows.numel() or self.version == 0:
            self.version += 1
            self._built_at = time.time()

    def dense_scores(self, queries: torch.Tensor) -> torch.Tensor | None:
        """The full `queries x items` score matrix while it stays small."""
        if self._items is None:
            raise ItemIndexError("index searched before its first refresh")
        if queries.shape[0] * self._items.shape[0] > self.dense_budget:
            return None
        scores: torch.Tensor = queries.float() @ self._items.float().T
        return scores

    def norm_prefix(self, k: int) -> NormPrefix | None:
        """The items of largest norm to search first for `k` per user (`index.norm_prefix`).

        None on an accelerator, where the catalogue is too small for it to pay, or while
        most users have lately been left unsettled (`NormPrefixCache`).
        """
        if self._items is None:
            raise ItemIndexError("index searched before its first refresh")
        size = prefix_size(k, self._items.shape[0])
        if self._items.device.type != "cpu" or not size:
            return None
        return self._prefixes.get(self._items, self.version, size)

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact top-`k` rows per query."""
        if self._items is None:
            raise ItemIndexError("index searched before its first refresh")
        return knn(queries, self._items, min(k, int(self._items.shape[0])))

    def score_rows(self, queries: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Exact scores of the given item rows per query (candidates from elsewhere)."""
        if self._items is None:
            raise ItemIndexError("index searched before its first refresh")
        return row_scores(queries, self._items, rows)

    def close(self) -> None:
        """Nothing runs in the background."""
