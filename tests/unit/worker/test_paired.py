"""Unit tests for `worker.tools.evaluate.paired`: two methods' difference on the same events."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worker.tools.evaluate.paired import paired_error


def test_the_error_is_worked_out_by_hand_for_one_user_apart() -> None:
    """Differences (1, 0, 0) of users (a, b, b): per-user centred sums 2/3 and -2/3."""
    error = paired_error(
        np.array([True, False, True]), np.array([False, False, True]), np.array([0, 1, 1])
    )
    # (4/9 + 4/9) x 2/1 = 16/9; its root 4/3, over 3 events
    assert error == pytest.approx(4 / 9)


def test_methods_that_agree_on_every_event_differ_by_no_noise() -> None:
    """Hits and misses on the same events: nothing to tell apart."""
    hits = np.array([True, False] * 50)
    assert paired_error(hits, hits, np.arange(100) % 7) == 0.0


def test_one_users_events_count_together() -> None:
    """The same differences weigh more when one user holds them all than when they are spread."""
    rng = np.random.default_rng(5)
    other = rng.random(400) < 0.3
    hits = other.copy()
    hits[np.flatnonzero(~other)[:20]] = True
    spread = np.arange(400) % 100
    clustered = spread.copy()
    clustered[np.flatnonzero(~other)[:20]] = 0
    assert paired_error(hits, other, clustered) > 2 * paired_error(hits, other, spread)


def test_trials_that_do_not_line_up_have_no_error() -> None:
    """Other lengths, or a single user, give nan rather than a figure."""
    hits = np.array([True, False, True])
    assert math.isnan(paired_error(hits[:2], hits, np.arange(3)))
    assert math.isnan(paired_error(hits, ~hits, np.zeros(3, dtype=np.int64)))
