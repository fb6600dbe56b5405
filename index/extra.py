"""Sparse per-user scores added to the inner product: the rank-time half of a side signal.

A side signal such as item-to-item transitions gives each user a few
(item row, value) pairs, with repeats. Over a dense score matrix they are one
scatter; beside a k-NN search they must also bring their own candidates, or an
item that only the side signal favours could never reach a list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class SharedRowScores:
    """Extra scores that point into one shared table: `ExtraScores` without the copy.

    User `u` adds `weights[u, j] * values[sources[u, j], s] * scale` to item row
    `rows[sources[u, j], s]`, for each of its sources `j` (`-1`: none) and each
    slot `s` (`-1` rows add nothing): item-to-item transitions, where a user's
    recent items each bring their successors' ring. Over a dense matrix only
    the rings of held sources are gathered, straight into the scatter;
    `expand()` is the same scores as an `ExtraScores`, `[users, n * slots]`.
    """

    sources: torch.Tensor  # [users, n] table rows
    weights: torch.Tensor  # [users, n]
    rows: torch.Tensor  # [table, slots] item rows
    values: torch.Tensor  # [table, slots]
    scale: float = 1.0
    # the table with unusable slots sent to row 0 with value 0, per dense width
    _ready: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def slice(self, start: int, stop: int) -> SharedRowScores:
        """The extra scores of users `start..stop-1`; the table (and its preparation) shared."""
        return SharedRowScores(
            self.sources[start:stop],
            self.weights[start:stop],
            self.rows,
            self.values,
            self.scale,
            self._ready,
        )

    def expand(self) -> ExtraScores:
        """The same scores as per-user `(rows, values)` pairs."""
        users = self.sources.shape[0]
        held = self.sources >= 0
        source = self.sources.clamp(min=0)
        rows = self.rows[source].long().masked_fill(~held.unsqueeze(2), -1)
        values = self.values[source] * self.weights.unsqueeze(2)
        if self.scale != 1.0:
            values = values * self.scale
        return ExtraScores(rows.reshape(users, -1), values.reshape(users, -1))

    def add_to(self, dense: torch.Tensor) -> None:
        """Add into a `[users, items]` score matrix in place, as `expand().add_to` would.

        One scatter along each user's row, in `expand()`'s order, so the sums are
        the same to the bit. A source of `-1` reads ring 0 with weight 0: it adds
        zeros, cheaper than compacting it out of a row-wise scatter.
        """
        if self.rows.shape[0] == 0:
            self.expand().add_to(dense)
            return
        users = self.sources.shape[0]
        target, values = self._table(dense.shape[1])
        source = self.sources.clamp(min=0).view(-1)
        weights = self.weights.masked_fill(self.sources < 0, 0.0)  # 0 * a finite share: 0
        share = values.index_select(0, source).view(users, -1, values.shape[1])
        share = share.mul_(weights.unsqueeze(2))
        if self.scale != 1.0:
            share.mul_(self.scale)
        where = target.index_select(0, source).view(users, -1)
        dense.scatter_add_(1, where, share.view(users, -1).to(dense.dtype))

    def _table(self, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`(rows, values)` of the table, slots off the matrix sent to column 0 with value 0."""
        if width not in self._ready:
            held = (self.rows >= 0) & (self.rows < width)
            target = self.rows.long().masked_fill_(~held, 0)
            self._ready[width] = (target, self.values.masked_fill(~held, 0.0))
        return self._ready[width]

    def totals(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`ExtraScores.totals` of `expand()`."""
        return self.expand().totals()

    def merge(
        self,
        scores: torch.Tensor,
        rows: torch.Tensor,
        queries: torch.Tensor,
        score_rows: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`ExtraScores.merge` of `expand()`."""
        return self.expand().merge(scores, rows, queries, score_rows)
