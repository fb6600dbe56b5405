"""Candidates from item-to-item neighbours of the user's recent clicks (co-visits, successors).

A user's score for item `i` is the lag-weighted sum, over their last clicks
`j`, of `i`'s weight among `j`'s neighbours: the newest click counts most. The
source also reports the lag of the nearest click that proposed `i`, as a
feature (a neighbour of the last click is not one of the tenth-last).
"""

from __future__ import annotations

import torch

from index.candidates.base import CandidateQuery, NeighbourTable, Proposal
from index.candidates.merge import best, merge_rows


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
        rows = neighbours.reshape(users, -1)
        values = torch.stack([(weight * lag_weight).reshape(users, -1), near.reshape(users, -1)], 2)
        rows = rows.masked_fill(values[..., 0] <= 0, -1)
        _, summed = merge_rows(rows, values[..., :1], "sum")
        merged, nearest = merge_rows(rows, values[..., 1:], "amax")
        rows_out, scores = best(merged, summed[..., 0], self.width)
        position = _positions(merged, rows_out)
        nearness = nearest[..., 0].gather(1, position).masked_fill(rows_out < 0, 0.0)
        return Proposal(rows_out, scores, nearness)


def _positions(merged: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Where each chosen row sits in `merged` (both per user; `merged`'s rows are distinct)."""
    ordered, order = merged.sort(dim=1)
    at = torch.searchsorted(ordered.contiguous(), chosen.contiguous())
    return order.gather(1, at.clamp(max=merged.shape[1] - 1))
