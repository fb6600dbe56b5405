"""GPU search against CPU search (skipped without CUDA).

The learner and exclusion suites run on every device through the `device`
fixture (tests/unit/conftest.py); what stays here compares two devices' answers.
"""

from __future__ import annotations

import pytest
import torch

from index.knn import backend_for, knn

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda")


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
