"""The ranker shared over the item feed: sent whole (it is tiny), averaged where it arrives.

Each worker's ranker learns from its own users' clicks. At each item sync a
worker that learned since its last send sends its parameters and feature
statistics, and the sums behind its taste share (`models.mixture`); a worker
that receives them averages them into its own (gossip towards one ranker and one
share), through their own `blend`. A record without the taste's arrays (an older
worker's) leaves the share alone.
"""

from __future__ import annotations

import numpy as np
import torch

from models.mixture import MixtureWeight
from models.ranker import OnlineRanker
from models.state import StateDict

_TASTE = "taste."  # the prefix of the taste share's arrays in a ranker record


class RankerShare:
    """Says when this worker's ranker is worth sending, and blends the others' into it."""

    def __init__(self, ranker: OnlineRanker, taste: MixtureWeight | None = None) -> None:
        """Share `ranker` (and `taste`): sent at the first take once it has taken a step."""
        self.ranker = ranker
        self.taste = taste
        self._sent_at = 0  # its step count when it was last sent

    def take(self) -> dict[str, np.ndarray] | None:
        """Its arrays by name if it learned since the last take (they then count as sent)."""
        steps = self.ranker.steps
        if steps == self._sent_at:
            return None
        self._sent_at = steps
        state = self.ranker.state_dict()
        arrays = {name: v.numpy() for name, v in state.items() if isinstance(v, torch.Tensor)}
        if self.taste is not None:
            arrays |= {_TASTE + name: v.numpy() for name, v in self.taste.shared().items()}
        return arrays

    def fold(self, arrays: dict[str, np.ndarray]) -> None:
        """Average another worker's ranker (its arrays by name), and taste share, into ours."""
        state: StateDict = {name: torch.from_numpy(a) for name, a in arrays.items()}
        self.ranker.blend([state])
        taste = {
            n[len(_TASTE) :]: torch.from_numpy(a) for n, a in arrays.items() if n.startswith(_TASTE)
        }
        if self.taste is not None and {"responsible", "labels"} <= taste.keys():
            self.taste.blend(taste)
