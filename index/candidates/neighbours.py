"""Candidates from item-to-item neighbours of the user's recent clicks (co-visits, successors).

A user's score for item `i` is the lag-weighted sum, over their last clicks
`j`, of `i`'s weight among `j`'s neighbours: the newest click counts most. The
source also reports the lag of the nearest click that proposed `i`, as a
feature (a neighbour of the last click is not one of the tenth-last), and
everything it found (`Reach`), so any candidate can be given its score.
"""

from __future__ import annotations

import torch

from index.candidates.base import CandidateQuery, NeighbourTable, Proposal, Reach
from index.candidates.merge import best_at, merge_rows


class NeighbourSource:
    """The `width` best neighbours of a user's last `window` clicks in one table."""

    def __init__(
        self,
        name: str,
        table: NeighbourTable,
        width: int,
        window: int,
        decay: float,
        normalise: float = 0.0,
        trim: bool = False,
    ) -> None:
        """`decay ** lag` weighs the click `lag` steps back (0 = the newest).

        `normalise`: each recent click's neighbour weights are divided by their total
        to this power (item-kNN's query normalisation), so a popular click, whose
        counts are large, does not drown the user's other clicks. `trim` (a CPU): merge
        into only as many slots as the user with most distinct neighbours fills.
        """
        self.name = name
        self.table = table
        self.width = width
        self.window = window
        self.decay = decay
        self.normalise = normalise
        self.trim = trim

    def propose(self, query: CandidateQuery) -> Proposal:
        """Neighbours of the recent clicks, summed per item, best `width` kept."""
        recent = query.recent[:, : self.window]
        users, window = recent.shape
        if users == 0 or window == 0:
            empty = torch.full((users, self.width), -1, dtype=torch.long, device=recent.device)
            none = torch.zeros(users, self.width, device=recent.device)
            nothing = torch.empty(users, 0, device=recent.device)
            reach = Reach(nothing.long(), nothing, nothing)
            return Proposal(empty, none - float("inf"), none, reach=reach)
        neighbours, weight = self.table.scores(recent)  # [users, window, slots]
        if self.normalise:
            weight = weight / weight.sum(2, keepdim=True).clamp(min=1e-6) ** self.normalise
        lag = torch.arange(window, device=recent.device, dtype=torch.float32)
        lag_weight = (self.decay**lag).unsqueeze(0).unsqueeze(2)
        near = (1.0 / (1.0 + lag)).unsqueeze(0).unsqueeze(2).expand_as(weight)
        summed = (weight * lag_weight).reshape(users, -1, 1)
        rows = neighbours.reshape(users, -1).masked_fill(summed[..., 0] <= 0, -1)
        merged, summed, nearest = merge_rows(
            rows, summed, near.reshape(users, -1, 1), query.extent, self.trim
        )
        rows_out, scores, at = best_at(merged, summed[..., 0], self.width)
        nearness = nearest[..., 0].gather(1, at).masked_fill(rows_out < 0, 0.0)
        # merged rows ascend after an optional leading -1; the unused slots past them
        # (-1) become `extent`, so the whole row ascends and can be searched
        searchable = merged.masked_fill(merged < 0, query.extent)
        searchable[:, 0] = merged[:, 0]
        reach = Reach(searchable, summed[..., 0], nearest[..., 0])
        return Proposal(rows_out, scores, nearness, reach=reach)
