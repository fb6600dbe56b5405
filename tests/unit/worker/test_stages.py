"""Unit tests for `worker.observability.stages.StageTimer`: stages timed by a context manager."""

from __future__ import annotations

import time

import pytest

from worker.observability.stages import StageTimer


def test_a_stage_records_its_wall_time_and_repeats_add_up() -> None:
    """Each `with timer(name)` adds its seconds to that stage."""
    timer = StageTimer()
    with timer("learn"):
        time.sleep(0.01)
    with timer("learn"):
        time.sleep(0.01)
    timer.add("publish", 0.5)
    assert set(timer.seconds) == {"learn", "publish"}
    assert timer.seconds["learn"] >= 0.02
    assert timer.seconds["publish"] == 0.5


def test_a_stage_that_raises_is_still_timed() -> None:
    """A failed stage took time too: it is recorded and the error passes through."""
    timer = StageTimer()
    with pytest.raises(ValueError, match="boom"), timer("commit"):
        raise ValueError("boom")
    assert timer.seconds["commit"] >= 0.0
