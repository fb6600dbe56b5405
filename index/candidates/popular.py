"""Candidates everyone shares: what is trending at each time scale, and the cold-start list.

Both are one list per batch, broadcast to every user (no per-user work but the
exclusion that follows the union). The cold-start list joins only for users
with little history: for the rest, the vector source already holds the
popular items their query favours.
"""

from __future__ import annotations

import torch

from index.candidates.base import CandidateQuery, Proposal


class TrendingSource:
    """The `width` most clicked items of each time scale, interleaved best first."""

    name = "trending"

    def __init__(self, width: int) -> None:
        """Propose up to `width` rows per user (split over the scales)."""
        self.width = width

    def propose(self, query: CandidateQuery) -> Proposal:
        """The scales' top lists, round-robin, with each row's best rank as its score."""
        lists = query.trending  # [scales, m]
        users = query.queries.shape[0]
        scales = max(1, lists.shape[0])
        per_scale = lists[:, : max(1, self.width // scales)]
        rank = torch.arange(per_scale.shape[1], device=lists.device, dtype=torch.float32)
        rows = per_scale.T.reshape(-1)  # round-robin over scales
        score = (-rank).repeat_interleave(per_scale.shape[0], output_size=rows.numel())
        rows, score = _first_of_each(rows, score)
        return Proposal(rows.expand(users, -1), score.expand(users, -1), shared=rows[0])


class ColdStartSource:
    """The cold-start list (item biases, i.e. popularity) for users with few clicks."""

    name = "cold"

    def __init__(self, width: int, max_clicks: int) -> None:
        """Propose the list's first `width` rows to users with at most `max_clicks` clicks."""
        self.width = width
        self.max_clicks = max_clicks

    def propose(self, query: CandidateQuery) -> Proposal:
        """The shared list, masked out for users past `max_clicks`."""
        users = query.queries.shape[0]
        shared = query.cold[: self.width]
        rank = torch.arange(shared.numel(), device=shared.device, dtype=torch.float32)
        light = (query.clicks <= self.max_clicks).unsqueeze(1)
        rows = shared.unsqueeze(0).expand(users, -1).masked_fill(~light, -1)
        return Proposal(rows, (-rank).unsqueeze(0).expand(users, -1), shared=shared)


def _first_of_each(rows: torch.Tensor, score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A flat list with repeats turned to `-1` after their first (best) place."""
    ordered, order = rows.sort(stable=True)
    repeat = torch.zeros_like(ordered, dtype=torch.bool)
    repeat[1:] = ordered[1:] == ordered[:-1]
    dropped = torch.zeros_like(repeat).scatter_(0, order, repeat)
    return rows.masked_fill(dropped | (rows < 0), -1).unsqueeze(0), score.unsqueeze(0)
