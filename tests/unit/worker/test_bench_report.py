"""The benchmark report states each figure beside its baseline and ratio."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.tools.bench.floor import floor_broken
from worker.tools.bench.report import markdown, plot_latency
from worker.tools.bench.stages import Row


def test_rows_render_with_their_ratio_and_latency_shares() -> None:
    """A row's ratio is rate over baseline, and loop-time shares sum per load."""
    rows = [
        Row("path", "drain x", 200.0, "events/s", "naive", 50.0),
        Row("decode", "msgpack", 10.0, "events/s"),
    ]
    latency = [
        {
            "offered": 1000.0,
            "events_per_s": 990.0,
            "p50_ms": 12.0,
            "p99_ms": 30.0,
            "stage_learn_s": 3.0,
            "stage_publish_s": 1.0,
        },
    ]
    info = {
        "title": "T",
        "date": "d",
        "command": "c",
        "repeats": 3,
        "machine": {"cpu": "x", "gpu": "none", "torch": "t", "faiss": "f", "python": "p"},
    }
    page = markdown(rows, latency, info, "img/p.png")
    assert rows[0].ratio == 4.0
    assert "| path | drain x | 200 | events/s | naive | 50.00 | 4.00x |" in page
    assert "| decode | msgpack | 10.00 | events/s |  |  |  |" in page
    assert "| 1,000 | 75% | 25% |" in page


def test_the_latency_plot_is_written(tmp_path: Path) -> None:
    """The PNG of throughput and latency against load is written (needs the bench extra)."""
    pytest.importorskip("matplotlib")
    latency = [
        {"offered": rate, "events_per_s": rate * 0.9, "p50_ms": 10.0, "p99_ms": 20.0}
        for rate in (1000.0, 10000.0)
    ]
    plot_latency(latency, tmp_path / "p.png", "T")
    assert (tmp_path / "p.png").stat().st_size > 1000


def _info(device: str) -> dict[str, object]:
    return {
        "title": "T",
        "date": "d",
        "command": "c",
        "repeats": 3,
        "device": device,
        "machine": {"cpu": "x", "gpu": "none", "torch": "t", "faiss": "f", "python": "p"},
    }


def _point(pass_p99_ms: float, offered: float = 1000.0) -> dict[str, float]:
    return {
        "offered": offered,
        "events_per_s": offered,
        "p50_ms": 20.0,
        "p99_ms": 60.0,
        "pass_p50_ms": 10.0,
        "pass_p99_ms": pass_p99_ms,
    }


def test_a_slow_floor_on_the_cpu_is_reported_broken_without_ratios() -> None:
    """A floor p99 above 100 ms at 1k/s on a CPU machine voids every ratio in the table."""
    latency = [_point(1008.0), _point(30.0, offered=5000.0)]
    reason = floor_broken(latency, "cpu")
    assert reason is not None
    assert "1,008 ms" in reason
    page = markdown([], latency, _info("cpu"), None)
    assert "floor is broken" in page
    assert "| floor broken | floor broken |" in page
    assert "x |" not in page.split("| ---: |")[-1].split("Latency:")[0]


def test_a_fast_floor_quotes_its_ratios() -> None:
    """At 30 ms p99 the floor is a floor: ratios are quoted and no warning is written."""
    latency = [_point(30.0)]
    assert floor_broken(latency, "cpu") is None
    page = markdown([], latency, _info("cpu"), None)
    assert "| 2.0x | 2.0x |" in page
    assert "broken" not in page


def test_the_self_check_judges_only_the_cpu_at_one_thousand() -> None:
    """On a GPU machine, or without a 1k/s point, a slow floor is not judged."""
    assert floor_broken([_point(500.0)], "cuda") is None
    assert floor_broken([_point(500.0, offered=5000.0)], "cpu") is None
    assert floor_broken([_point(100.0)], "cpu") is None
