"""Unit tests for `models.prior.PopularityPrior`: time-decayed click mass in log space."""

from __future__ import annotations

import math

import pytest
import torch

from models.prior import FLOOR, PopularityPrior


def _add(
    prior: PopularityPrior, items: list[int], weights: list[float], now: float, rows: int
) -> torch.Tensor:
    """Fold clicks in on the prior's device; return the change of each row's `L`, on the host."""
    device = prior.device
    changed, deltas = prior.add(
        torch.tensor(items, dtype=torch.int64, device=device),
        torch.tensor(weights, device=device),
        now,
        rows,
    )
    total = torch.zeros(rows, dtype=torch.float64, device=device)
    return total.index_add_(0, changed, deltas).cpu()


def _decayed(prior: PopularityPrior, rows: int) -> torch.Tensor:
    """Each row's click mass decayed to the prior's clock, `exp(L - (clock - ref) / tau)`."""
    log_mass = prior.log_mass[:rows].cpu()
    return torch.exp(log_mass - (prior.clock - prior.ref) / prior.tau)


def test_decayed_counts_after_two_batches_follow_the_closed_form(device: torch.device) -> None:
    """`Σ w exp(-(now - t) / tau)` per item, repeats in a batch summed, as log-space changes."""
    tau = 10.0
    prior = PopularityPrior(tau, device)
    first = _add(prior, [0], [1.0], now=5.0, rows=3)
    assert prior.ref == 5.0
    before = prior.log_mass[:3].cpu().clone()
    second = _add(prior, [0, 1, 0], [1.5, 1.0, 0.5], now=15.0, rows=3)
    expected = torch.tensor([math.exp(-1.0) + 2.0, 1.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(_decayed(prior, 3), expected)
    torch.testing.assert_close(first[0], torch.tensor(0.0 - FLOOR, dtype=torch.float64))
    torch.testing.assert_close(second, prior.log_mass[:3].cpu() - before)  # a repeat counts once
    assert prior.log_mass[2].item() == FLOOR  # never clicked


def test_the_clock_never_runs_back_and_a_zero_weight_changes_nothing(device: torch.device) -> None:
    """A late batch is folded in at the clock's time; a click of weight 0 leaves `L` as it was."""
    prior = PopularityPrior(10.0, device)
    _add(prior, [0], [1.0], now=20.0, rows=2)
    _add(prior, [1], [1.0], now=10.0, rows=2)  # late: counted at t=20
    assert prior.clock == 20.0
    torch.testing.assert_close(_decayed(prior, 2), torch.ones(2, dtype=torch.float64))
    held = prior.log_mass[:2].cpu().clone()
    change = _add(prior, [0], [0.0], now=20.0, rows=2)
    assert torch.equal(prior.log_mass[:2].cpu(), held)
    assert change.tolist() == [0.0, 0.0]


def test_a_rebase_moves_the_reference_and_keeps_the_decayed_counts(device: torch.device) -> None:
    """Past `_REBASE` time constants every row shifts once; the decayed counts are unchanged."""
    prior = PopularityPrior(1.0, device)
    _add(prior, [0], [1.0], now=0.0, rows=2)
    change = _add(prior, [1], [2.0], now=40.0, rows=2)
    assert prior.ref == 40.0
    expected = torch.tensor([math.exp(-40.0), 2.0], dtype=torch.float64)
    torch.testing.assert_close(_decayed(prior, 2), expected)
    assert change[0].item() == pytest.approx(-40.0)


def test_reset_forgets_a_reused_row(device: torch.device) -> None:
    """A row handed to a new item holds no clicks: its `L` is the floor again."""
    prior = PopularityPrior(10.0, device)
    _add(prior, [0, 1], [1.0, 1.0], now=1.0, rows=2)
    prior.reset(torch.tensor([1], device=device))
    assert prior.log_mass[:2].cpu().tolist() == [0.0, FLOOR]
