"""The GPU path computes what the CPU path computes (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch

from index.exact import ExactIndex
from index.exclusion import top_k_excluding
from index.knn import backend_for, knn
from models.history import SeenHistory
from models.learner import LearnerConfig, OnlineLearner

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda")


def _planted(learner: OnlineLearner, users: int, items: int, steps: int) -> None:
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        u = torch.randint(0, users, (512,), generator=gen)
        i = (torch.randint(0, items // 2, (512,), generator=gen) * 2 + u % 2) % items
        rows_u = learner.users.rows_for([f"u{x}" for x in u.tolist()])
        rows_i = learner.items.rows_for([f"i{x}" for x in i.tolist()])
        device = learner.device
        learner.learn(
            torch.from_numpy(rows_u).to(device),
            torch.from_numpy(rows_i).to(device),
            torch.ones(512, device=device),
        )


def test_learner_on_cuda_learns_the_planted_split() -> None:
    """On the GPU, users score their own parity's items above the other parity's."""
    learner = OnlineLearner(LearnerConfig(dim=16, seed=0), CUDA)
    _planted(learner, users=40, items=200, steps=60)
    scores = learner.user_vectors(torch.arange(len(learner.users), device=CUDA)) @ (
        learner.item_vectors().T
    )
    user_parity = torch.tensor([int(u[1:]) % 2 for u in learner.users.ids()], device=CUDA)
    item_parity = torch.tensor([int(i[1:]) % 2 for i in learner.items.ids()], device=CUDA)
    same = user_parity[:, None] == item_parity[None, :]
    assert scores[same].mean() > scores[~same].mean() + 0.5


def test_knn_on_cuda_matches_the_cpu_search() -> None:
    """GPU search (FAISS GPU or the torch fallback) returns the CPU's exact top-k."""
    gen = torch.Generator().manual_seed(1)
    items = torch.randn(20_000, 65, generator=gen)
    queries = torch.randn(300, 65, generator=gen)
    cpu_scores, _ = knn(queries, items, 50)
    gpu_scores, gpu_rows = knn(queries.to(CUDA), items.to(CUDA), 50)
    assert gpu_rows.device.type == "cuda"
    assert torch.allclose(gpu_scores.cpu(), cpu_scores, atol=1e-3)
    recomputed = (queries.to(CUDA)[:, None, :] * items.to(CUDA)[gpu_rows]).sum(-1)
    assert torch.allclose(recomputed, gpu_scores, atol=1e-3)
    assert backend_for(CUDA) in {"faiss-gpu", "torch-blocked"}


def test_exclusion_on_cuda_never_lists_a_seen_item() -> None:
    """Seen items are excluded on the GPU exactly as on the CPU."""
    gen = torch.Generator().manual_seed(2)
    items = torch.randn(500, 9, generator=gen).to(CUDA)
    history = SeenHistory(64, CUDA)
    users = torch.randint(0, 30, (2000,), generator=gen).to(CUDA)
    clicked = torch.randint(0, 500, (2000,), generator=gen).to(CUDA)
    history.add(users, clicked, torch.zeros(2000, device=CUDA))
    index = ExactIndex()
    index.refresh(items, torch.arange(500, device=CUDA))
    touched = torch.unique(users)
    queries = torch.randn(touched.numel(), 9, generator=gen).to(CUDA)
    top = top_k_excluding(index, queries, history.seen(touched), history.seen_counts(touched), 20)
    seen = history.seen(touched)
    assert (top.rows >= 0).all()
    assert not (top.rows[:, :, None] == seen[:, None, :]).any()
    assert (top.scores[:, :-1] >= top.scores[:, 1:]).all()
