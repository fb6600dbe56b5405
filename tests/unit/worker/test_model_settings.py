"""The model settings are `LearnerConfig`'s: the same fields, defaults and bounds (one table)."""

from __future__ import annotations

import math

import pytest

from worker.config.settings import load_settings
from worker.errors import SettingsError

pytestmark = pytest.mark.usefixtures("clean_env")  # tests/unit/worker/conftest.py


def test_model_settings_are_learner_config_fields() -> None:
    """`settings.model` passes whole into `LearnerConfig`: every field of it is one of those."""
    import dataclasses

    from models.learner import LearnerConfig
    from worker.config.parts import ModelSettings

    assert set(ModelSettings.model_fields) <= {f.name for f in dataclasses.fields(LearnerConfig)}


def test_model_settings_defaults_are_the_learner_config_defaults() -> None:
    """Each unset model variable means `LearnerConfig`'s default; unset negatives, the CPU's."""
    from models.learner_config import LearnerConfig
    from worker.config.parts import ModelSettings, default_negatives

    config, settings = LearnerConfig(), ModelSettings()
    for name in ModelSettings.model_fields:
        expected = None if name == "negatives" else getattr(config, name)
        assert getattr(settings, name) == expected, name
    assert default_negatives("cpu") == config.negatives


def _model_bounds() -> list[tuple[str, str]]:
    from models.learner_config import BOUNDS
    from worker.config.parts import ModelSettings

    bounded = sorted(set(ModelSettings.model_fields) & set(BOUNDS))
    return [(name, side) for name in bounded for side in BOUNDS[name].limits()]


def test_every_numeric_model_setting_is_in_the_learner_table() -> None:
    """No model setting has a bound of its own: each number is in `BOUNDS`, the clock a choice."""
    from typing import get_args

    from models.learner_config import BOUNDS, PopularityClock
    from worker.config.parts import ModelSettings

    assert set(ModelSettings.model_fields) - set(BOUNDS) == {"popularity_clock"}
    clock = ModelSettings.model_fields["popularity_clock"].annotation
    assert set(get_args(clock)) == set(get_args(PopularityClock))


def _next_to(limit: float, side: str, *, outside: bool, integer: bool) -> float:
    """The value just outside one side of a bound, or the first one inside it."""
    if (side in ("gt", "lt")) == outside:  # an open side's limit lies outside, a closed one's in
        return limit
    below = (side in ("ge", "gt")) == outside  # outside a lower side lies below it
    if integer:
        return limit - 1 if below else limit + 1
    return math.nextafter(limit, -math.inf if below else math.inf)


@pytest.mark.parametrize(("name", "side"), _model_bounds())
def test_model_bounds_are_the_learner_config_bounds(
    monkeypatch: pytest.MonkeyPatch, name: str, side: str
) -> None:
    """Just outside each bound both the variable and `LearnerConfig` refuse; at it both accept."""
    from models.learner_config import BOUNDS, LearnerConfig

    limit = BOUNDS[name].limits()[side]
    integer = isinstance(getattr(LearnerConfig(), name), int)
    outside = _next_to(limit, side, outside=True, integer=integer)
    inside = _next_to(limit, side, outside=False, integer=integer)
    if integer:
        outside, inside = int(outside), int(inside)
    variable = f"RECSTREAM_{name.upper()}"
    monkeypatch.setenv(variable, repr(outside))
    with pytest.raises(SettingsError, match=f"{variable}:"):
        load_settings()
    with pytest.raises(ValueError, match=f"{name} must be"):
        LearnerConfig(**{name: outside})  # type: ignore[arg-type]
    monkeypatch.setenv(variable, repr(inside))
    assert getattr(load_settings().model, name) == inside
    assert getattr(LearnerConfig(**{name: inside}), name) == inside  # type: ignore[arg-type]


@pytest.mark.parametrize(("device", "negatives"), [("cpu", 128), ("cuda", 2048)])
def test_negatives_default_by_device(device: str, negatives: int) -> None:
    """Unset RECSTREAM_NEGATIVES means 2048 on a GPU and 128 on a CPU; a set one wins."""
    import torch

    from worker.app import learner_config
    from worker.config.parts import ModelSettings

    assert learner_config(ModelSettings(), torch.device(device)).negatives == negatives
    assert learner_config(ModelSettings(negatives=7), torch.device(device)).negatives == 7
