"""Unit tests for `models.mixing`: the online choice of a term's weight."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import StateError
from models.mixing import WeightSelector


def test_keeps_the_start_weight_until_another_leads() -> None:
    """With no evidence, or ties, the start weight stays in use."""
    selector = WeightSelector((0.0, 4.0, 16.0), start=4.0)
    assert selector.weight == 4.0
    selector.observe(np.ones((5, 3), dtype=bool))
    assert selector.weight == 4.0


def test_switches_to_the_weight_with_more_hits_and_follows_a_change() -> None:
    """The leader is chosen on decayed hits, so a newer regime wins back."""
    selector = WeightSelector((0.0, 16.0), start=0.0, half_life=50)
    selector.observe(np.array([[False, True]] * 20))
    assert selector.weight == 16.0
    for _ in range(20):
        selector.observe(np.array([[True, False]] * 20))
    assert selector.weight == 0.0


def test_state_round_trips_and_checks_the_grid() -> None:
    """A restored selector leads with the same weight; another grid is refused."""
    selector = WeightSelector((0.0, 16.0), start=0.0)
    selector.observe(np.array([[False, True]] * 3))
    other = WeightSelector((0.0, 16.0), start=0.0)
    other.load_state_dict(selector.state_dict())
    assert other.weight == 16.0
    with pytest.raises(StateError, match="grid"):
        WeightSelector((0.0, 1.0, 2.0), start=0.0).load_state_dict(selector.state_dict())
