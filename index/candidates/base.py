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
    """

    rows: torch.Tensor
    scores: torch.Tensor
    nearness: torch.Tensor | None = None
    scored: bool = False
    shared: torch.Tensor | None = None


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


class CandidateSource(Protocol):
    """One source of candidates."""

    name: str
    width: int

    def propose(self, query: CandidateQuery) -> Proposal:
        """At most `width` distinct item rows per user, best first."""
        ...
