"""Unit tests for `worker.observability.stats.LatencyReservoir`."""

from __future__ import annotations

import numpy as np
import pytest

from worker.observability.stats import LatencyReservoir


def test_empty_reservoir() -> None:
    """No samples: nothing retained and every quantile is 0."""
    reservoir = LatencyReservoir(size=4)
    assert reservoir.samples().size == 0
    assert reservoir.quantile_ms(0.5) == 0.0


def test_keeps_only_the_newest_samples_across_wrap_around() -> None:
    """Adds that wrap the ring keep exactly the newest `size` samples."""
    reservoir = LatencyReservoir(size=5)
    reservoir.add(np.array([1.0, 2.0, 3.0]))
    assert sorted(reservoir.samples().tolist()) == [1.0, 2.0, 3.0]
    reservoir.add(np.array([4.0, 5.0, 6.0, 7.0]))
    assert sorted(reservoir.samples().tolist()) == [3.0, 4.0, 5.0, 6.0, 7.0]
    reservoir.add(np.array([], dtype=np.float64))
    reservoir.add(np.array([8.0]))
    assert sorted(reservoir.samples().tolist()) == [4.0, 5.0, 6.0, 7.0, 8.0]


def test_an_add_larger_than_the_ring_keeps_its_tail() -> None:
    """One add longer than the ring keeps its last `size` samples, at any ring position."""
    reservoir = LatencyReservoir(size=4)
    reservoir.add(np.array([0.5, 0.25]))
    reservoir.add(np.arange(10, dtype=np.float64))
    assert sorted(reservoir.samples().tolist()) == [6.0, 7.0, 8.0, 9.0]
    reservoir.add(np.array([10.0, 11.0, 12.0]))
    assert sorted(reservoir.samples().tolist()) == [9.0, 10.0, 11.0, 12.0]


def test_matches_a_reference_over_many_adds() -> None:
    """Over random add sizes the retained set equals the last `size` samples added."""
    rng = np.random.default_rng(0)
    reservoir = LatencyReservoir(size=37)
    everything: list[float] = []
    for _ in range(200):
        chunk = rng.random(int(rng.integers(0, 60)))
        reservoir.add(chunk)
        everything.extend(chunk.tolist())
        assert sorted(reservoir.samples().tolist()) == sorted(everything[-37:])


def test_quantile_ms_on_known_data() -> None:
    """Quantiles are taken over the retained samples and reported in milliseconds."""
    reservoir = LatencyReservoir(size=101)
    reservoir.add(np.linspace(0.0, 1.0, 101))
    assert reservoir.quantile_ms(0.5) == pytest.approx(500.0)
    assert reservoir.quantile_ms(0.99) == pytest.approx(990.0)
    assert reservoir.quantile_ms(0.0) == pytest.approx(0.0)
    assert reservoir.quantile_ms(1.0) == pytest.approx(1000.0)
    reservoir.add(np.full(101, 2.0))
    assert reservoir.quantile_ms(0.5) == pytest.approx(2000.0)
