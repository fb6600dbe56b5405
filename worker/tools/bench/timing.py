"""Repeat, synchronise, take the median: the only timing rule the suite uses."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    """Wait for queued device work so host clocks measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(
    run: Callable[[], object], repeats: int, device: torch.device | None = None, warmup: int = 1
) -> float:
    """Median wall time of `run` over `repeats` calls, after `warmup` untimed ones."""
    dev = device or torch.device("cpu")
    for _ in range(warmup):
        run()
    sync(dev)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync(dev)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
