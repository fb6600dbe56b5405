"""The mixture weight learned by online EM: it follows whichever component names the clicks."""

from __future__ import annotations

import math

import torch

from models.mixture import MixtureWeight

CPU = torch.device("cpu")


def _log_p(*rows: list[float]) -> torch.Tensor:
    """Log-probabilities of each row's weights (0: no mass, -inf)."""
    return torch.tensor(rows).log()


def _teach(weight: MixtureWeight, first: torch.Tensor, second: torch.Tensor, times: int) -> None:
    positive = torch.zeros(first.shape[0], dtype=torch.int64)  # column 0 is clicked
    for _ in range(times):
        weight.learn(first, second, positive)


def test_the_weight_rises_when_the_second_component_names_the_clicks() -> None:
    """The second component gives the clicks 0.9, the first 0.1: its share grows to the cap."""
    weight = MixtureWeight(0.3, CPU, prior=10.0)
    first, second = _log_p([0.1, 0.9], [0.1, 0.9]), _log_p([0.9, 0.1], [0.9, 0.1])
    _teach(weight, first, second, 200)
    assert 0.6 < float(weight.value) <= 0.9  # capped at `most`


def test_the_weight_falls_when_the_second_component_misses_the_clicks() -> None:
    """The second component never names the clicked item: its share falls towards 0."""
    weight = MixtureWeight(0.3, CPU, prior=10.0)
    first, second = _log_p([0.5, 0.5], [0.5, 0.5]), _log_p([0.0, 1.0], [0.0, 1.0])
    _teach(weight, first, second, 200)
    assert float(weight.value) < 0.05


def test_components_that_agree_leave_the_weight_where_it_was() -> None:
    """Equal probabilities of the click carry no evidence: EM's fixed point is the start."""
    weight = MixtureWeight(0.3, CPU, prior=10.0)
    both = _log_p([0.4, 0.6], [0.7, 0.3])
    _teach(weight, both, both.clone(), 100)
    assert math.isclose(float(weight.value), 0.3, abs_tol=1e-4)


def test_clicks_outside_the_set_and_rows_without_a_second_component_are_skipped() -> None:
    """Neither a click outside the set nor a row the mixture leaves alone is evidence."""
    weight = MixtureWeight(0.3, CPU)
    first = _log_p([0.5, 0.5], [0.5, 0.5])
    second = torch.stack([_log_p([0.0, 1.0])[0], torch.full((2,), -math.inf)])
    weight.learn(first, second, torch.tensor([-1, 0]))
    assert float(weight.labels) == 0.0
    assert math.isclose(float(weight.value), 0.3, abs_tol=1e-6)


def test_the_learned_weight_survives_a_state_round_trip() -> None:
    """The decayed sums are the state: a restored weight has the learned value."""
    weight = MixtureWeight(0.3, CPU, prior=10.0)
    _teach(weight, _log_p([0.1, 0.9]), _log_p([0.9, 0.1]), 20)
    restored = MixtureWeight(0.3, CPU, prior=10.0)
    restored.load_state_dict(weight.state_dict())
    assert math.isclose(float(restored.value), float(weight.value), rel_tol=1e-6)
    assert float(restored.value) > 0.3
