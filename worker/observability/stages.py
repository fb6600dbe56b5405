"""Stage timing as a context manager: `with timer("rank"):` instead of t0/t1/t2 by hand.

Who counts what: the table in `worker.observability.accounting`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class StageTimer:
    """Wall seconds per named stage of one batch; a stage entered twice adds up."""

    def __init__(self) -> None:
        """Start with no stage timed."""
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Time the block under `name`, also when it raises (a retried stage still took time)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        """Record time measured elsewhere (the publish, on its own thread)."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
