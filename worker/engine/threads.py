"""How many threads torch may use: the CPUs this process may really run on.

torch sizes its intra-op pool by the host's cores, not the container's share: a pod
limited to 2 CPUs on a 64-core node starts 64 threads, which the CFS quota then
throttles in turn, and every parallel region waits for its slowest, descheduled
thread. The share is the smallest of the affinity mask and the cgroup CPU quota
(v2 `cpu.max`, or v1 `cpu.cfs_quota_us` over `cpu.cfs_period_us`), rounded up.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


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
