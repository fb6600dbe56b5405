"""Unit tests for the warm start: vectors into the learner's rows and back out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.learner import LearnerConfig, OnlineLearner
from models.vectors import VectorFileError, Vectors
from models.warm_start import export_vectors, install_vectors


def _learner(dim: int = 4) -> OnlineLearner:
    return OnlineLearner(LearnerConfig(dim=dim, negatives=8), torch.device("cpu"))


def _vectors(dim: int = 4) -> Vectors:
    rng = np.random.default_rng(3)
    return Vectors(
        [f"i{n}" for n in range(20)],
        rng.normal(scale=0.1, size=(20, dim)).astype(np.float32),
        rng.normal(size=20).astype(np.float32),
        [f"u{n}" for n in range(6)],
        rng.normal(scale=2.0, size=(6, dim)).astype(np.float32),
    )


def test_install_keeps_every_score_and_exports_back() -> None:
    """Installed rows score users and items as the file did; export gives the file back."""
    learner, vectors = _learner(), _vectors()
    installed = install_vectors(learner, vectors)
    assert (installed.items, installed.users) == (20, 6)
    users = torch.from_numpy(learner.users.lookup(vectors.user_ids))
    items = torch.from_numpy(learner.items.lookup(vectors.item_ids))
    got = learner.user_table.weight[users, :4] @ learner.item_table.weight[items, :4].T
    want = vectors.user_vectors @ vectors.item_vectors.T  # type: ignore[operator]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    exported = export_vectors(learner)
    assert exported.item_ids == vectors.item_ids
    assert exported.item_bias is not None
    assert vectors.item_bias is not None
    np.testing.assert_allclose(exported.item_bias, vectors.item_bias, rtol=1e-4, atol=1e-3)
    # the context rows carry the item vectors: recent clicks point at similar items
    np.testing.assert_allclose(
        learner.context_table.weight[items, :4].numpy(),
        learner.item_table.weight[items, :4].numpy(),
    )


def test_wrong_width_is_refused() -> None:
    """Vectors of another width never reach the tables."""
    with pytest.raises(VectorFileError, match="8 wide"):
        install_vectors(_learner(4), _vectors(8))


def test_learning_continues_from_installed_rows() -> None:
    """A warm learner takes steps like a cold one: finite loss, rows move."""
    learner, vectors = _learner(), _vectors()
    install_vectors(learner, vectors)
    before = learner.item_table.weight[:20].clone()
    users = torch.from_numpy(learner.users.lookup(["u0", "u1"]))
    items = torch.from_numpy(learner.items.lookup(["i3", "i4"]))
    stats = learner.learn(users, items, torch.ones(2))
    assert np.isfinite(stats.loss)
    assert not torch.equal(before, learner.item_table.weight[:20])
