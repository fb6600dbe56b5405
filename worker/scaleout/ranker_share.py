"""The ranker shared over the item feed: sent whole (it is tiny), averaged where it arrives.

Each worker's ranker learns from its own users' clicks. At each item sync a
worker that learned since its last send sends its parameters and feature
statistics, and the sums behind its learned shares (`models.mixture`: the taste's,
popularity's between sessions); a worker that receives them averages them into its
own (gossip towards one ranker and one of each share), through their own `blend`. A
record without a share's arrays (an older worker's) leaves that share alone.
"""

from __future__ import annotations

import numpy as np
import torch

from models.hit_share import HitShare
from models.mixture import MixtureWeight
from models.ranker import OnlineRanker
from models.state import StateDict


class RankerShare:
    """Says when this worker's ranker is worth sending, and blends the others' into it."""

    def __init__(
        self, ranker: OnlineRanker, shares: dict[str, MixtureWeight | HitShare] | None = None
    ) -> None:
        """Share `ranker` and the learned `shares` by name (their arrays go as `name.sum`).

        Sent at the first take once the ranker has taken a step.
        """
        self.ranker = ranker
        self.shares = shares or {}
        self._sent_at = 0  # its step count when it was last sent

    def take(self) -> dict[str, np.ndarray] | None:
        """Its arrays by name if it learned since the last take (they then count as sent)."""
        steps = self.ranker.steps
        if steps == self._sent_at:
            return None
        self._sent_at = steps
        state = self.ranker.state_dict()
        arrays = {name: v.numpy() for name, v in state.items() if isinstance(v, torch.Tensor)}
        for share, weight in self.shares.items():
            arrays |= {f"{share}.{name}": v.numpy() for name, v in weight.shared().items()}
        return arrays

    def fold(self, arrays: dict[str, np.ndarray]) -> None:
        """Average another worker's ranker (its arrays by name), and its shares, into ours."""
        state: StateDict = {name: torch.from_numpy(a) for name, a in arrays.items()}
        self.ranker.blend([state])
        for share, weight in self.shares.items():
            prefix = f"{share}."
            sums = {
                n[len(prefix) :]: torch.from_numpy(a)
                for n, a in arrays.items()
                if n.startswith(prefix)
            }
            if set(weight.SHARED) <= sums.keys():
                weight.blend(sums)
