"""Unit tests for `worker.engine.transfer.Transfers`: one packed copy each way, values exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from index.exact import ExactIndex
from models.history import SeenHistory
from models.learner import LearnerConfig, OnlineLearner
from worker.engine.engine import Engine
from worker.engine.transfer import Transfers


def _batch(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = rng.integers(-1, 2**31 - 1, n, dtype=np.int64)
    weights = rng.random(n, dtype=np.float32)
    weights[0] = -np.inf
    times = 1.7e9 + rng.random(n)  # epoch seconds with their fractions: float64's last bits
    return rows, weights, times


def test_a_packed_upload_brings_every_array_back_exactly(device: torch.device) -> None:
    """Rows, weights and times sent as one copy arrive bit for bit, each in its dtype and shape."""
    transfers = Transfers(device, packed=True)
    rows, weights, times = _batch(50, seed=0)
    grid = rows[:48].reshape(6, 8)
    up_rows, up_weights, up_times, up_grid = transfers.upload(rows, weights, times, grid)
    assert (up_rows.dtype, up_weights.dtype, up_times.dtype) == (
        torch.int64,
        torch.float32,
        torch.float64,
    )
    assert up_rows.device.type == device.type
    np.testing.assert_array_equal(up_rows.cpu().numpy(), rows)
    np.testing.assert_array_equal(up_weights.cpu().numpy(), weights)
    np.testing.assert_array_equal(up_times.cpu().numpy(), times)
    np.testing.assert_array_equal(up_grid.cpu().numpy(), grid)


def test_the_next_upload_leaves_the_last_ones_tensors_alone(device: torch.device) -> None:
    """The staging buffer is reused, never the tensors handed out from it."""
    transfers = Transfers(device, packed=True)
    first, _, times = _batch(20, seed=1)
    (kept, kept_times) = transfers.upload(first, times)
    transfers.upload(*_batch(20, seed=2)[::2])  # overwrites the staging buffer
    np.testing.assert_array_equal(kept.cpu().numpy(), first)
    np.testing.assert_array_equal(kept_times.cpu().numpy(), times)


def test_a_packed_download_brings_every_tensor_back_exactly(device: torch.device) -> None:
    """Rows (-1 padded), scores (-inf padded) and times read back as one copy, bit for bit."""
    transfers = Transfers(device, packed=True)
    rows = torch.tensor([[3, 2**31 - 2, -1], [0, -1, -1]], device=device)
    scores = torch.tensor([[0.1, -2.5e-8, -torch.inf], [3e38, -torch.inf, -torch.inf]])
    times = torch.tensor([1.7e9 + 1 / 3, 0.0], dtype=torch.float64, device=device)
    got_rows, got_scores, got_times = transfers.download(rows, scores.to(device), times)
    assert (got_rows.dtype, got_scores.dtype, got_times.dtype) == (
        np.int64,
        np.float32,
        np.float64,
    )
    np.testing.assert_array_equal(got_rows, rows.cpu().numpy())
    np.testing.assert_array_equal(got_scores, scores.numpy())
    np.testing.assert_array_equal(got_times, times.cpu().numpy())


def test_only_what_float64_carries_exactly_is_moved() -> None:
    """An int32 or float16 array is refused: the packing is exact only for the batch's dtypes."""
    transfers = Transfers(torch.device("cpu"), packed=True)
    with pytest.raises(TypeError, match="int32"):
        transfers.upload(np.zeros(3, dtype=np.int32))
    with pytest.raises(TypeError, match="float16"):
        transfers.download(torch.zeros(3, dtype=torch.float16))


def _engine(device: torch.device, packed: bool) -> Engine:
    torch.manual_seed(0)
    learner = OnlineLearner(
        LearnerConfig(dim=8, negatives=4, seed=3), device, SeenHistory(16, device)
    )
    engine = Engine(learner, ExactIndex(), top_k=5)
    engine.transfers = Transfers(device, packed=packed)
    return engine


def test_an_engine_moving_packed_copies_publishes_the_same_lists(device: torch.device) -> None:
    """Packing changes how a batch travels, not what is learned or listed."""
    rng = np.random.default_rng(4)
    lists = []
    for packed in (False, True):
        engine = _engine(device, packed)
        for step in range(6):
            users = [f"u{n}" for n in rng.integers(0, 12, 40)]
            items = [f"i{n}" for n in rng.integers(0, 30, 40)]
            learned = engine.learn(users, items, np.full(40, 100.0 + step), np.ones(40, np.float32))
        lists.append(engine.lists(engine.rank(learned.touched)))
        rng = np.random.default_rng(4)
    plain, packed_lists = lists
    assert plain.users == packed_lists.users
    np.testing.assert_array_equal(plain.item_rows, packed_lists.item_rows)
    np.testing.assert_allclose(plain.scores, packed_lists.scores, rtol=1e-6)
    np.testing.assert_array_equal(plain.event_ts, packed_lists.event_ts)
