"""The batch loop's own knobs; each component it drives carries its own."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoopConfig:
    """The loop's own knobs (the components carry theirs)."""

    top_k: int
    batch_size: int  # a poll's size at light load
    batch_s: float
    event_weights: dict[str, float]
    max_event_weight: float = 10.0  # one event counts as at most this many clicks
    max_clock_skew_s: float = 300.0  # events stamped later than now + this are dead-lettered
    # Write batch N while learning N+1; None: only with the model on a GPU. On a CPU torch's
    # threads already take every core, and a concurrent write slowed learning 3-6x in the
    # 2-core bench (the overlap's gain there is the write's share of the loop, about 5%).
    overlap: bool | None = None
    # While polls come back full, the next asks for up to this many (worker/loop/batching.py);
    # None: always `batch_size`.
    batch_max: int | None = None
    # On a CPU, run each large batch on one torch thread or on all, whichever measured
    # cheaper lately (worker/loop/thread_tuner.py); False: always on all.
    tune_threads: bool = True
