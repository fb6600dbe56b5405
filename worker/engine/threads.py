"""How many threads torch may use: the CPUs this process may really run on, and when.

torch sizes its intra-op pool by the host's cores, not the container's share: a pod
limited to 2 CPUs on a 64-core node starts 64 threads, which the CFS quota then
throttles in turn, and every parallel region waits for its slowest, descheduled
thread. The share is the smallest of the affinity mask and the cgroup CPU quota
(v2 `cpu.max`, or v1 `cpu.cfs_quota_us` over `cpu.cfs_period_us`), rounded up.

A small batch runs on one thread (`threads_for_batch`): its ops are tiny, so a
second thread's fork and join cost more than it takes over, and beside a broker,
Redis and producers on the same cores a parallel region waits for whichever of
its threads was descheduled. On 2 shared cores at 1k events/s (batches of 30-60
events) click→Redis p99 was 76 and 93 ms against 132 and 126 ms on two threads
always; a batch of 1,000 events still runs 1.6x faster on two (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

CGROUP = Path("/sys/fs/cgroup")
SMALL_BATCH_EVENTS = 128  # a CPU batch of fewer events than this runs on one thread


def available_cpus(cgroup: Path = CGROUP) -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup quota if one is set."""
    affinity = getattr(os, "sched_getaffinity", None)  # None on macOS
    cpus = len(affinity(0)) if affinity else os.cpu_count() or 1
    quota = cgroup_quota(cgroup)
    return max(1, cpus if quota is None else min(cpus, quota))


def cgroup_quota(cgroup: Path = CGROUP) -> int | None:
    """The CPU quota of this cgroup in whole CPUs (rounded up), or None when unlimited."""
    try:
        limit, period, *_ = [*(cgroup / "cpu.max").read_text().split(), "", ""]
    except OSError:
        limit, period = "", ""
    if limit.isdigit() and period.isdigit():  # "max PERIOD" is unlimited
        return _whole(int(limit), int(period))
    try:
        quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        every = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return _whole(quota, every) if quota > 0 else None  # v1 writes -1 for unlimited


def _whole(quota: int, period: int) -> int | None:
    """A quota of `quota` microseconds every `period` as whole CPUs, at least one."""
    return max(1, math.ceil(quota / period)) if period > 0 else None


def torch_threads(setting: int) -> int:
    """The intra-op threads for `RECSTREAM_TORCH_THREADS` (0: the CPUs this process may use)."""
    return setting or available_cpus()


def threads_for_batch(events: int, threads: int) -> int:
    """Intra-op threads for a batch of `events` on a CPU: one below `SMALL_BATCH_EVENTS`."""
    return 1 if events < SMALL_BATCH_EVENTS else threads


@contextmanager
def intra_op_threads(threads: int) -> Iterator[None]:
    """Run the block on `threads` torch intra-op threads, then restore the count before it."""
    before = torch.get_num_threads()
    if threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
