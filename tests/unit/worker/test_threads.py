"""Unit tests for `worker.engine.threads`: torch's threads follow the CPU share and the batch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from worker.engine.threads import (
    SMALL_BATCH_EVENTS,
    available_cpus,
    cgroup_quota,
    intra_op_threads,
    threads_for_batch,
    torch_threads,
)


def _cgroup(tmp_path: Path, v2: str | None = None, v1: tuple[int, int] | None = None) -> Path:
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2 + "\n")
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(f"{v1[0]}\n")
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(f"{v1[1]}\n")
    return tmp_path


@pytest.mark.parametrize(
    ("v2", "v1", "quota"),
    [
        ("max 100000", None, None),  # cgroup v2, unlimited
        ("200000 100000", None, 2),  # v2: two CPUs
        ("150000 100000", None, 2),  # a share of 1.5 CPUs rounds up
        ("50000 100000", None, 1),  # half a CPU: still one thread
        (None, (-1, 100000), None),  # cgroup v1, unlimited
        (None, (400000, 100000), 4),  # v1: four CPUs
        (None, None, None),  # no cgroup files at all (macOS, a bare host)
    ],
)
def test_the_cgroup_quota_is_read_in_whole_cpus(
    tmp_path: Path, v2: str | None, v1: tuple[int, int] | None, quota: int | None
) -> None:
    """Both cgroup versions' quotas read as whole CPUs, rounded up; none set reads as None."""
    assert cgroup_quota(_cgroup(tmp_path, v2, v1)) == quota


def test_a_quota_below_the_affinity_mask_caps_the_threads(tmp_path: Path) -> None:
    """A pod limited to one CPU gets one thread, whatever the host's cores."""
    assert available_cpus(_cgroup(tmp_path, "100000 100000")) == 1


def test_without_a_quota_the_affinity_mask_decides(tmp_path: Path) -> None:
    """With no quota, the CPUs this process may run on are its threads."""
    assert available_cpus(_cgroup(tmp_path, "max 100000")) == len(os.sched_getaffinity(0))


def test_an_explicit_setting_wins_over_the_detected_share() -> None:
    """RECSTREAM_TORCH_THREADS=3 gives three threads; 0 asks for the detected share."""
    assert torch_threads(3) == 3
    assert torch_threads(0) == available_cpus()


def test_a_small_batch_runs_on_one_thread_a_large_one_on_all() -> None:
    """Below `SMALL_BATCH_EVENTS` one thread; at it and above, the configured count."""
    assert threads_for_batch(1, 8) == 1
    assert threads_for_batch(SMALL_BATCH_EVENTS - 1, 8) == 1
    assert threads_for_batch(SMALL_BATCH_EVENTS, 8) == 8
    assert threads_for_batch(10 * SMALL_BATCH_EVENTS, 1) == 1


def test_intra_op_threads_are_restored_after_the_block_even_when_it_raises() -> None:
    """The block runs on the given count; the count before it comes back, on error too."""
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with intra_op_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), intra_op_threads(other):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
