"""The ranker shared over the item feed: sent whole (it is tiny), averaged where it arrives.

Each worker's ranker learns from its own users' clicks. At each item sync a
worker that learned since its last send sends its parameters and feature
statistics; a worker that receives one averages it into its own (gossip
towards one ranker), through the ranker's own `blend`.
"""

from __future__ import annotations

import numpy as np
import torch

from models.ranker import OnlineRanker
from models.state import StateDict


class RankerShare:
    """Says when this worker's ranker is worth sending, and blends the others' into it."""

    def __init__(self, ranker: OnlineRanker) -> None:
        """Share `ranker`: sent at the first take once it has taken a step."""
        self.ranker = ranker
        self._sent_at = 0  # its step count when it was last sent

    def take(self) -> dict[str, np.ndarray] | None:
        """Its arrays by name if it learned since the last take (they then count as sent)."""
        steps = self.ranker.steps
        if steps == self._sent_at:
            return None
        self._sent_at = steps
        state = self.ranker.state_dict()
        return {name: v.numpy() for name, v in state.items() if isinstance(v, torch.Tensor)}

    def fold(self, arrays: dict[str, np.ndarray]) -> None:
        """Average another worker's ranker (its arrays by name) into this one."""
        state: StateDict = {name: torch.from_numpy(a) for name, a in arrays.items()}
        self.ranker.blend([state])
