"""Progress bars: on a terminal only, off with --quiet, and told of every event."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from worker.tools.evaluate.data import encode
from worker.tools.evaluate.peers import MostPopular
from worker.tools.evaluate.protocol import evaluate
from worker.tools.progress import bar
from worker.tools.replay import Interactions


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        """Always a terminal."""
        return True


def test_bars_show_on_a_terminal_unless_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal gets a bar; --quiet or a pipe gets a disabled one."""
    monkeypatch.setattr(sys, "stderr", _Terminal())
    with bar(10, "x") as shown:
        assert not shown.disable
        shown.update(10)
    assert "x:" in sys.stderr.getvalue()  # drawn (and cleared at the end: leave=False)
    assert bar(10, "x", quiet=True).disable
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert bar(10, "x").disable


def test_evaluate_reports_every_event_to_its_progress() -> None:
    """The eval's progress callback is told of each batch, summing to the stream's length."""
    n = 101
    users = [f"u{k % 7}" for k in range(n)]
    items = [f"i{k % 13}" for k in range(n)]
    stream = encode("s", Interactions(users, items, np.arange(n, dtype=np.float64)))
    told: list[int] = []
    evaluate(stream, MostPopular(stream.n_items), 16, windows=2, progress=told.append)
    assert sum(told) == n
    assert len(told) == 7
