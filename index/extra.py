"""Sparse per-user scores added to the inner product: the rank-time half of a side signal.

A side signal such as item-to-item transitions gives each user a few
(item row, value) pairs, with repeats. Over a dense score matrix they are one
scatter; beside a k-NN search they must also bring their own candidates, or an
item that only the side signal favours could never reach a list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

_SENTINEL = torch.iinfo(torch.int64).max  # sorts after every row


@dataclass(frozen=True)
class ExtraScores:
    """`values[u, c]` added to user `u`'s score of item row `rows[u, c]`; `-1` rows add nothing."""

    rows: torch.Tensor
    values: torch.Tensor

    def slice(self, start: int, stop: int) -> ExtraScores:
        """The extra scores of users `start..stop-1` (a batch ranked in chunks)."""
        return ExtraScores(self.rows[start:stop], self.values[start:stop])

    def add_to(self, dense: torch.Tensor) -> None:
        """Add into a `[users, items]` score matrix in place (rows past its width ignored)."""
        width = dense.shape[1]
        held = (self.rows >= 0) & (self.rows < width)
        target = self.rows.clamp(min=0, max=width - 1)
        dense.scatter_add_(1, target, self.values.masked_fill(~held, 0.0).to(dense.dtype))

    def totals(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each user's distinct rows, sorted (`_SENTINEL` padded), and their summed values."""
        rows = self.rows.masked_fill(self.rows < 0, _SENTINEL)
        ordered, order = rows.sort(dim=1)
        values = self.values.gather(1, order)
        starts = torch.ones_like(ordered, dtype=torch.bool)
        starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        run = starts.long().cumsum(1) - 1
        distinct = torch.full_like(ordered, _SENTINEL).scatter_(1, run, ordered)
        summed = torch.zeros_like(values).scatter_add_(1, run, values)
        return distinct, summed.masked_fill(distinct == _SENTINEL, 0.0)

    def merge(
        self,
        scores: torch.Tensor,
        rows: torch.Tensor,
        queries: torch.Tensor,
        score_rows: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Search results joined by the extra's own candidates: `(inner products, extra, rows)`.

        Every extra candidate the search did not return is scored by `score_rows`
        (a repeat of a searched row gets `-inf`). Exact: an item in neither set has
        no extra score and an inner product below every search result, so it
        cannot outrank them.
        """
        distinct, summed = self.totals()
        width = max(1, int((distinct != _SENTINEL).sum(1).max()))
        distinct, summed = distinct[:, :width], summed[:, :width]
        slot = torch.searchsorted(distinct, rows.clamp(min=0).contiguous())
        slot = slot.clamp(max=distinct.shape[1] - 1)
        found = (distinct.gather(1, slot) == rows) & (rows >= 0)
        on_searched = summed.gather(1, slot).masked_fill(~found, 0.0)
        live = distinct != _SENTINEL
        candidates = distinct.masked_fill(~live, -1)
        listed = rows.sort(dim=1).values
        where = torch.searchsorted(listed, candidates.contiguous()).clamp(max=listed.shape[1] - 1)
        already = listed.gather(1, where) == candidates
        own = score_rows(queries, candidates.clamp(min=0))
        own = own.masked_fill(already | ~live, float("-inf"))
        return (
            torch.cat([scores, own], 1),
            torch.cat([on_searched, summed.masked_fill(~live, 0.0)], 1),
            torch.cat([rows, candidates], 1),
        )
