"""Choosing a term's weight online, by how well each candidate weight's lists would have done.

How much "what comes next" should count against a user's long-run taste differs
per stream (MovieLens sessions reward it more than a stream of stable tastes),
and a weight tuned on one stream is wrong on the next. So every candidate
weight on a fixed grid is scored prequentially: before a batch is learned, a
sample of its events is ranked under each weight, and each weight counts how
often the clicked item made the top k. The weight in use is the one with the
most (exponentially decayed) hits; it changes only when another one leads.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from models.errors import StateError
from models.state import JSON, StateDict, integer, sequence


class WeightSelector:
    """Decayed hit counts per candidate weight, and the weight that leads."""

    def __init__(self, grid: tuple[float, ...], start: float, half_life: float = 5_000.0) -> None:
        """`grid` of candidate weights; `start` is used until another leads on evidence."""
        if not grid or any(not w >= 0 for w in grid):
            raise ValueError(f"grid must be non-empty and >= 0, got {grid}")
        if not half_life > 0:
            raise ValueError(f"half_life must be > 0, got {half_life}")
        self.grid = np.asarray(grid, dtype=np.float64)
        self.hits = np.zeros(len(grid), dtype=np.float64)
        self.decay = 0.5 ** (1.0 / half_life)  # per observed event
        self.current = int(np.argmin(np.abs(self.grid - start)))
        self.observed = 0

    @property
    def weight(self) -> float:
        """The weight in use."""
        return float(self.grid[self.current])

    def observe(self, hits: npt.NDArray[np.bool_]) -> None:
        """Fold in `[events, len(grid)]` hits (was the clicked item in each weight's top k)."""
        events = int(hits.shape[0])
        if events == 0:
            return
        self.hits = self.hits * self.decay**events + hits.sum(axis=0)
        self.observed += events
        best = int(np.argmax(self.hits))
        if self.hits[best] > self.hits[self.current]:
            self.current = best

    def state_dict(self) -> StateDict:
        """The decayed hit counts, the weight in use and the events observed (plain values)."""
        hits: list[JSON] = [float(h) for h in self.hits]
        return {"hits": hits, "current": self.current, "observed": self.observed}

    def load_state_dict(self, state: StateDict) -> None:
        """Restore `state_dict()` output written over a grid of as many weights."""
        hits = sequence(state, "hits")
        if len(hits) != self.hits.size or not all(
            isinstance(h, (int, float)) and not isinstance(h, bool) for h in hits
        ):
            raise StateError(f"selector grid of {len(hits)} weights, expected {self.hits.size}")
        current, observed = integer(state, "current"), integer(state, "observed")
        if not 0 <= current < self.hits.size:
            raise StateError(f"current weight {current} is off the grid of {self.hits.size}")
        self.hits = np.asarray(hits, dtype=np.float64)
        self.current, self.observed = current, observed
