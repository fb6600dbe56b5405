"""Exact inner-product k-NN over a torch matrix, through FAISS where it can serve.

`faiss.knn_gpu` searches a CUDA tensor in place and `faiss.knn` a CPU tensor,
so the item matrix can change between searches with no index to rebuild.
"""

from __future__ import annotations

import contextlib

import faiss
import torch

from index.blocked import blocked_knn
from models.take import take_rows

with contextlib.suppress(ImportError):  # older FAISS builds ship without the torch bridge
    import faiss.contrib.torch_utils

# FAISS GPU's k-selection supports k up to 2048; past it we fall back to torch.topk.
GPU_MAX_K = 2048
_TORCH_BUDGET = 1 << 27  # score elements per matmul chunk (512 MiB in fp32)


def _probe_faiss_gpu() -> bool:
    """Whether this FAISS build can search on a GPU (warn-free capability flag)."""
    try:
        return bool(hasattr(faiss, "knn_gpu") and faiss.get_num_gpus() > 0)
    except (AttributeError, RuntimeError):
        return False


HAS_FAISS_GPU = _probe_faiss_gpu()
_gpu_resources: dict[int, faiss.StandardGpuResources] = {}


def _resources(device: torch.device) -> faiss.StandardGpuResources:
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _gpu_resources:
        _gpu_resources[index] = faiss.StandardGpuResources()
    return _gpu_resources[index]


def backend_for(device: torch.device) -> str:
    """Name of the backend `knn` uses for tensors on `device`."""
    if device.type == "cuda":
        return "faiss-gpu" if HAS_FAISS_GPU else "torch-blocked"
    return "faiss-cpu"


def torch_knn(
    queries: torch.Tensor, items: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k by matmul and `topk`, in query chunks of bounded size: the baseline."""
    chunk = max(1, _TORCH_BUDGET // max(1, items.shape[0]))
    parts = [
        (queries[s : s + chunk] @ items.T).topk(k, dim=1) for s in range(0, len(queries), chunk)
    ]
    return torch.cat([p.values for p in parts]), torch.cat([p.indices for p in parts])


def knn(queries: torch.Tensor, items: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-`k` items by inner product for each query: `(scores, rows)`, best first.

    Both tensors must be on the same device; results stay on it.
    """
    if queries.shape[0] == 0 or k == 0:
        empty = torch.empty(queries.shape[0], 0, device=queries.device)
        return empty, empty.long()
    queries = queries.contiguous().float()
    items = items.contiguous().float()
    if items.device.type == "cuda":
        if HAS_FAISS_GPU and k <= GPU_MAX_K:
            with torch.cuda.device(items.device):
                scores, rows = faiss.knn_gpu(
                    _resources(items.device), queries, items, k, metric=faiss.METRIC_INNER_PRODUCT
                )
            return scores, rows
        return blocked_knn(queries, items, k)
    scores, rows = faiss.knn(queries, items, k, metric=faiss.METRIC_INNER_PRODUCT)
    return scores, rows


def row_scores(queries: torch.Tensor, items: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Inner products of each query with its own item rows `[users, c]` (each >= 0), in chunks."""
    queries = queries.float()
    width = max(1, rows.shape[1] * items.shape[1])
    chunk = max(1, _TORCH_BUDGET // 4 // width)
    parts = [
        torch.einsum(
            "bd,bcd->bc", queries[s : s + chunk], take_rows(items, rows[s : s + chunk]).float()
        )
        for s in range(0, rows.shape[0], chunk)
    ]
    if not parts:
        return torch.empty(0, rows.shape[1], device=items.device)
    return torch.cat(parts)
