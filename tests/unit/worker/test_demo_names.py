"""A demo on given servers writes under names of its own, distinct even within one second."""

from __future__ import annotations

import re

import pytest

from worker.tools import demo


def test_two_demos_started_in_the_same_second_get_distinct_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same clock reading, different topic, group, prefix and cold-start key."""
    monkeypatch.setattr(demo.time, "time", lambda: 1_800_000_000.5)
    one = demo._names(own_kafka=False, own_redis=False)
    two = demo._names(own_kafka=False, own_redis=False)
    assert re.fullmatch(r"recstream-demo-1800000000-[0-9a-f]{6}", one.topic)
    assert one.topic != two.topic
    assert one.group != two.group
    assert one.prefix != two.prefix
    assert one.cold_start_key != two.cold_start_key
