"""Candidates from item-to-item neighbours of the user's recent clicks (co-visits, successors).

A user's score for item `i` is the lag-weighted sum, over their last clicks
`j`, of `i`'s weight among `j`'s neighbours: the newest click counts most. The
source also reports the lag of the nearest click that proposed `i`, as a
feature (a neighbour of the last click is not one of the tenth-last).
"""

from __future__ import annotations

import torch

from index.candidates.base import CandidateQuery, NeighbourTable, Proposal
from index.candidates.merge import best_at, merge_rows


class NeighbourSource:
    """The `width` best neighbours of a user's last `window` clicks in one table."""

    def __init__(
        self, name: str, table: NeighbourTable, width: int, window: int, decay: float
    ) -> None:
        """`decay ** lag` weighs the click `lag` steps back (0 = the newest)."""
        self.name = name
        self.table = table
        self.width = width
        self.window = window
        self.decay = decay

    def propose(self, query: CandidateQuery) -> Proposal:
        """Neighbours of the recent clicks, summed per item, best `width` kept."""
        recent = query.recent[:, : self.window]
        users, window = recent.shape
        if users == 0 or window == 0:
            empty = torch.full((users, self.width), -1, dtype=torch.long, device=recent.device)
            none = torch.zeros(users, self.width, device=recent.device)
            return Proposal(empty, none - float("inf"), none)
        neighbours, weight = self.table.scores(recent)  # [users, window, slots]
        lag = torch.arange(window, device=recent.device, dtype=torch.float32)
        lag_weight = (self.decay**lag).unsqueeze(0).unsqueeze(2)
        near = (1.0 / (1.0 + lag)).unsqueeze(0).unsqueeze(2).expand_as(weight)
        summed = (weight * lag_weight).reshape(users, -1, 1)
        rows = neighbours.reshape(users, -1).masked_fill(summed[..., 0] <= 0, -1)
        merged, summed, nearest = merge_rows(rows, summed, near.reshape(users, -1, 1), query.extent)
        rows_out, scores, at = best_at(merged, summed[..., 0], self.width)
        nearness = nearest[..., 0].gather(1, at).masked_fill(rows_out < 0, 0.0)
        return Proposal(rows_out, scores, nearness)
