"""The benchmark report states each figure beside its baseline and ratio."""

from __future__ import annotations

from pathlib import Path

import pytest

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
