"""Unit tests for `worker.engine.Engine`: the learn-then-rank step the worker and eval share."""

from __future__ import annotations

import numpy as np
import torch

from index import ExactIndex
from models import LearnerConfig, OnlineLearner, SeenHistory
from worker.engine import Engine


def _engine(top_k: int = 3) -> Engine:
    device = torch.device("cpu")
    learner = OnlineLearner(LearnerConfig(dim=8, negatives=4), device)
    return Engine(learner, SeenHistory(16, device), ExactIndex(), top_k)


def _learn(engine: Engine, users: list[str], items: list[str], ts: float = 1.0) -> None:
    n = len(users)
    engine.learn(users, items, np.full(n, ts), np.ones(n, dtype=np.float32))


def test_known_user_rows_marks_unknown_ids_and_creates_none() -> None:
    """Ids never learned come back as -1 and get no row."""
    engine = _engine()
    _learn(engine, ["a", "b"], ["x", "y"])
    rows = engine.known_user_rows(["b", "zzz", "a"])
    assert rows.tolist() == [1, -1, 0]
    assert "zzz" not in engine.learner.users


def test_lists_leave_out_seen_items_and_carry_the_newest_event_time() -> None:
    """A user's list holds only items they have not clicked, with their newest event time."""
    engine = _engine(top_k=5)
    _learn(engine, ["a"] * 3 + ["b"] * 3, ["i1", "i2", "i3", "i3", "i4", "i5"], ts=7.0)
    _learn(engine, ["a"], ["i6"], ts=9.0)
    learned_rows = torch.tensor([engine.learner.users.row("a")])
    recs = engine.recommendations(engine.rank(learned_rows))
    assert len(recs) == 1
    assert recs[0].user == "a"
    assert set(recs[0].items) == {"i4", "i5"}  # the only items "a" has not clicked
    assert recs[0].event_ts == 9.0
    assert recs[0].scores == sorted(recs[0].scores, reverse=True)


def test_touched_users_are_the_distinct_users_of_the_batch() -> None:
    """Learning reports each user of the batch once."""
    engine = _engine()
    n = 4
    learned = engine.learn(["u", "v", "u", "u"], ["p", "q", "r", "p"], np.ones(n), np.ones(n))
    assert sorted(engine.learner.users.ids_of(learned.touched.numpy()).tolist()) == ["u", "v"]
