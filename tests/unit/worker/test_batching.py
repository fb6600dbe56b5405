"""The poll size grows while a backlog waits and shrinks once caught up (`worker.loop.batching`)."""

from __future__ import annotations

import pytest

from worker.loop.batching import CPU_BATCH_MAX, GPU_BATCH_MAX, BatchSizer, default_batch_max


def test_light_load_never_changes_the_size() -> None:
    """Polls that come back short keep the base size: latency at light load is as before."""
    sizer = BatchSizer(4096, 65_536)
    for got in (1, 30, 4095, 0, 17):
        assert sizer.observe(got) == 4096


def test_a_backlog_doubles_the_size_up_to_the_cap() -> None:
    """Full polls double the next one's size until the cap, and never past it."""
    sizer = BatchSizer(4096, 20_000)
    sizes = [sizer.observe(sizer.size) for _ in range(5)]
    assert sizes == [8192, 16_384, 20_000, 20_000, 20_000]


def test_caught_up_halves_back_to_the_base() -> None:
    """Once polls come back short, the size halves each batch, down to the base and no lower."""
    sizer = BatchSizer(1000, 16_000)
    while sizer.size < sizer.cap:
        sizer.observe(sizer.size)
    sizes = [sizer.observe(10) for _ in range(6)]
    assert sizes == [8000, 4000, 2000, 1000, 1000, 1000]


def test_no_cap_or_a_cap_below_the_base_means_no_growth() -> None:
    """Without a cap above the base, a full poll keeps the base size."""
    assert BatchSizer(512).observe(512) == 512
    assert BatchSizer(512, 100).observe(512) == 512


def test_the_default_cap_is_larger_on_a_gpu() -> None:
    """Unset, the cap follows the device: larger where a step costs the same at any size."""
    assert default_batch_max("cuda") == GPU_BATCH_MAX > CPU_BATCH_MAX == default_batch_max("cpu")


def test_a_base_below_one_is_refused() -> None:
    """A zero base size would never poll anything."""
    with pytest.raises(ValueError, match="base"):
        BatchSizer(0)


def test_a_full_poll_reports_a_backlog_and_a_short_one_clears_it() -> None:
    """`backlog`: the poll came back full, or at a grown size; not once short at the base."""
    sizer = BatchSizer(100, 400)
    assert not sizer.backlog
    sizer.observe(100)
    assert sizer.backlog
    sizer.observe(150)  # short of the 200 asked for, but grown: still draining
    assert sizer.backlog
    sizer.observe(10)  # short at the base: caught up
    assert not sizer.backlog
