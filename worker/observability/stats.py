"""Running totals and a bounded latency reservoir, for in-process callers (demo, bench, tests).

Only `worker.observability.accounting` writes them; who counts what: the table there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


class LatencyReservoir:
    """The most recent `size` latency samples in a fixed ring: bounded memory forever."""

    def __init__(self, size: int = 200_000) -> None:
        """Allocate the ring once."""
        self._ring = np.zeros(size, dtype=np.float64)
        self._written = 0

    def add(self, samples: npt.NDArray[np.float64]) -> None:
        """Append samples, overwriting the oldest."""
        size = self._ring.shape[0]
        samples = samples[-size:]
        start = self._written % size
        head = min(size - start, samples.shape[0])
        self._ring[start : start + head] = samples[:head]
        self._ring[: samples.shape[0] - head] = samples[head:]
        self._written += samples.shape[0]

    def samples(self) -> npt.NDArray[np.float64]:
        """The retained samples (order not kept)."""
        return self._ring[: min(self._written, self._ring.shape[0])].copy()

    def quantile_ms(self, q: float) -> float:
        """A latency quantile in milliseconds (0 with no samples)."""
        data = self.samples()
        return float(np.quantile(data, q) * 1000.0) if data.size else 0.0


@dataclass
class WorkerTotals:
    """What the worker has done since it started."""

    messages: int = 0
    events: int = 0
    dead_lettered: int = 0
    batches: int = 0
    users_published: int = 0
    latency: LatencyReservoir = field(default_factory=LatencyReservoir)
    stage_s: dict[str, float] = field(default_factory=dict)  # wall seconds per loop stage
