"""Candidates from the item index over the learned vectors: the user's nearest items.

Exact search on a small live matrix, IVF (built in the background and swapped
in) on a large one: whatever `ItemIndex` the worker was given. Seen and
unavailable items are left out here, so this source alone can fill a list. An
approximate search fetches at most twice the width to make up for them; only
the users that leaves short (a long history near their query) are searched
again with room for all of it.
"""

from __future__ import annotations

from index.candidates.base import CandidateQuery, Proposal
from index.exclusion import top_k_excluding


class VectorSource:
    """The `width` best items by inner product with the user's query vector."""

    name = "vector"

    def __init__(self, width: int) -> None:
        """Propose `width` rows per user."""
        self.width = width

    def propose(self, query: CandidateQuery) -> Proposal:
        """One search for the whole batch, seen and unavailable items excluded."""
        top = top_k_excluding(
            query.index,
            query.queries,
            query.seen,
            query.seen_counts,
            self.width,
            unavailable=query.unavailable,
            most_widen=self.width,
            also=query.score_rows,
        )
        return Proposal(top.rows, top.scores, scored=True, also=top.also)
