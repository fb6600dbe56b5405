"""Stage 1's small interface: a source proposes a bounded set of item rows per user.

A new source is one module: a class with a `name`, a `width` (how many rows it
proposes per user at most) and `propose`. Sources read only what a
`CandidateQuery` carries (tensors, and the item index), so they know nothing of
the learner, Kafka or Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from index.base import ItemIndex


@dataclass(frozen=True)
class Proposal:
    """`[users, width]` item rows (`-1` pads) and the source's own score of each, best first.

    `nearness` (neighbour sources): 1 / (1 + lag) of the newest click that proposed the row.
    `scored`: the scores are the rows' inner products with the user's query (the vector
    source), so no one computes them again. `shared`: the one list `[width]` every user's
    rows are taken from (column `j` is `shared[j]` or `-1`), so it is scored once for all.
    `reach` (neighbour sources): every row the source found, not only the `width` it
    proposes, so a candidate any source proposed can be given this source's score.
    `also` (the vector source): inner products at the query's `score_rows`, read from the
    dense score matrix it searched (None where it searched an index instead).
    """

    rows: torch.Tensor
    scores: torch.Tensor
    nearness: torch.Tensor | None = None
    scored: bool = False
    shared: torch.Tensor | None = None
    reach: Reach | None = None
    also: torch.Tensor | None = None


@dataclass(frozen=True)
class Reach:
    """A neighbour source's whole find per user: ascending rows and their score and nearness.

    `rows` is `[users, n]`, ascending, with `-1` only in column 0 and the item extent
    (above every row) past the last row found, so it can be searched.
    """

    rows: torch.Tensor
    scores: torch.Tensor
    nearness: torch.Tensor

    def lookup(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(score, nearness)` of each of `rows` `[users, m]`: 0 where the source found none."""
        if self.rows.shape[1] == 0:
            zero = torch.zeros(rows.shape, device=rows.device)
            return zero, zero
        at = torch.searchsorted(self.rows, rows.contiguous()).clamp_(max=self.rows.shape[1] - 1)
        found = (self.rows.gather(1, at) == rows) & (rows >= 0)
        score = self.scores.gather(1, at).masked_fill_(~found, 0.0)
        return score, self.nearness.gather(1, at).masked_fill_(~found, 0.0)


class NeighbourTable(Protocol):
    """Item-to-item neighbours: co-visits or successors, read for a block of item rows."""

    def scores(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(neighbour rows, weight)`, each `[*rows.shape, slots]`; `-1` rows have none."""
        ...


@dataclass(frozen=True)
class CandidateQuery:
    """What sources may read about one batch of users (row-aligned tensors, one device)."""

    index: ItemIndex
    user_rows: torch.Tensor  # [users] the users' rows (for features the caller adds)
    queries: torch.Tensor  # [users, dim + 1] query vectors
    seen: torch.Tensor  # [users, h] item rows seen, -1 padded
    seen_counts: torch.Tensor  # [users]
    recent: torch.Tensor  # [users, r] last clicks, newest first, -1 padded
    clicks: torch.Tensor  # [users] clicks folded in per user (activity)
    trending: torch.Tensor  # [scales, m] each time scale's most clicked item rows
    cold: torch.Tensor  # [m] the cold-start list's item rows
    unavailable: torch.Tensor | None  # [item rows] bool: no list may name these
    extent: int  # every item row is below this (known on the host: no read-back)
    # [users, m] item rows (>= 0) whose inner products the vector source reads off its dense
    # score matrix when it makes one (the other sources' rows, scored without a gather)
    score_rows: torch.Tensor | None = None


class CandidateSource(Protocol):
    """One source of candidates."""

    name: str
    width: int

    def propose(self, query: CandidateQuery) -> Proposal:
        """At most `width` distinct item rows per user, best first."""
        ...
