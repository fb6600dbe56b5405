"""Warm-up runs the learn and rank paths on a scratch engine and leaves the real one alone."""

from __future__ import annotations

import torch

from worker.app import build_engine
from worker.config.settings import Settings, with_values
from worker.engine.engine import Engine
from worker.engine.warmup import warm_up


def test_warm_up_learns_and_ranks_a_scratch_engine_only() -> None:
    """The scratch engine learned rows; the real engine still holds none and samples as before."""
    settings = with_values(Settings(), dim=8, device="cpu", metrics_port=0)
    device = torch.device("cpu")
    real = build_engine(settings, device)
    generator_state = real.learner._generator.get_state()
    built: list[Engine] = []

    def scratch() -> Engine:
        built.append(build_engine(settings, device))
        return built[-1]

    seconds = warm_up(scratch, batch_size=64)
    assert seconds > 0
    assert len(built) == 1
    assert len(built[0].learner.users) > 0
    assert len(built[0].learner.items) > 0
    assert built[0].learner.steps > 0
    assert len(real.learner.users) == len(real.learner.items) == 0
    assert real.learner.steps == 0
    assert torch.equal(real.learner._generator.get_state(), generator_state)
