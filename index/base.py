"""The interface every item index implements."""

from __future__ import annotations

from typing import Protocol

import torch


class ItemIndex(Protocol):
    """Top-k inner-product search over the live item matrix.

    The index never owns the item vectors: the learner does. `refresh` hands it
    the current matrix and the rows the last batch changed; `search` answers
    over item rows. `version` counts refreshes that changed what it searches.
    """

    kind: str
    version: int

    @property
    def built_at(self) -> float:
        """`time.time()` when what `search` reads was last made current."""

    def refresh(self, items: torch.Tensor, updated_rows: torch.Tensor) -> None:
        """Take the live matrix and the rows updated since the last call."""

    def dense_scores(self, queries: torch.Tensor) -> torch.Tensor | None:
        """Every item's score per query when that is cheap and exact, else None."""

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`(scores, rows)` of the best `k` items per query, best first; row -1 if none."""

    def score_rows(self, queries: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Scores `[users, c]` of the given item rows `[users, c]` per query, exactly."""

    def close(self) -> None:
        """Stop background work."""
