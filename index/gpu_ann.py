"""Which index a catalogue gets from this FAISS build: chosen by feature, never by version.

FAISS wheels differ in what they can do on a GPU: `faiss-cpu` none, `faiss-gpu-cu12`
brute force and IVF, `faiss-gpu-cu13-cuvs` (the `gpu-cu13` extra) also NVIDIA cuVS's
CAGRA, a GPU graph index for 10^7+ items. The choice is probed on the module itself
(`hasattr(faiss, "GpuIndexCagra")`, `faiss.get_num_gpus()`), so a fake module in a test
and a real build choose alike (tests/unit/index/test_gpu_ann.py).

- `exact` stays exact: `index.knn` uses `faiss.knn_gpu` where it can and recstream's torch
  path (`index/blocked.py`) where it cannot.
- `ivf` (large catalogues) builds from a snapshot off the hot path: CAGRA on a GPU when
  the build has it and the snapshot is large, else IVF-Flat on the GPU, else on the CPU.
  With the model on a GPU but no GPU FAISS, it falls back to exact search on the torch
  path: an IVF on the host would copy every query batch off the device and back.

None of this was measured on a GPU here (docs/benchmarks.md, "FAISS on CUDA 13 hosts").
"""

from __future__ import annotations

from types import ModuleType
from typing import Literal

import numpy as np

# Below this many items an IVF trains in seconds and searches as fast; CAGRA's graph pays
# off where IVF lists grow long (cuVS's own guidance puts CAGRA at millions of vectors).
CAGRA_MIN_ROWS = 1_000_000
# CAGRA's graph: neighbours kept per node and the graph pruned from (cuVS defaults).
CAGRA_GRAPH_DEGREE = 64
CAGRA_INTERMEDIATE_DEGREE = 128
_ITOPK_FLOOR = 64  # cuVS's default itopk_size; it must be at least k

Build = Literal["cagra", "ivf-gpu", "ivf-cpu"]


def gpu_count(faiss: ModuleType) -> int:
    """GPUs this FAISS build can use (0 for a CPU build, or when probing fails)."""
    try:
        return int(faiss.get_num_gpus())
    except (AttributeError, RuntimeError):
        return 0


def has_gpu_ivf(faiss: ModuleType) -> bool:
    """Whether the build can move an index to a GPU (any GPU build, on a host with a GPU)."""
    return hasattr(faiss, "index_cpu_to_gpu") and gpu_count(faiss) > 0


def has_cagra(faiss: ModuleType) -> bool:
    """Whether the build has cuVS CAGRA (`faiss-gpu-cu13-cuvs`), on a host with a GPU."""
    return (
        hasattr(faiss, "GpuIndexCagra")
        and hasattr(faiss, "GpuIndexCagraConfig")
        and gpu_count(faiss) > 0
    )


def choose_kind(kind: str, device_type: str, faiss: ModuleType) -> str:
    """The index `make_index` builds for a setting: `exact` or `ivf`.

    `ivf` with the model on a GPU and no GPU FAISS becomes `exact` (the torch path).
    """
    if kind == "ivf" and device_type == "cuda" and not has_gpu_ivf(faiss):
        return "exact"
    return kind


def choose_build(faiss: ModuleType, *, gpu: bool, rows: int) -> Build:
    """What an `ivf` index builds from a snapshot of `rows` items (`gpu`: searched on one)."""
    if not gpu or not has_gpu_ivf(faiss):
        return "ivf-cpu"
    if rows >= CAGRA_MIN_ROWS and has_cagra(faiss):
        return "cagra"
    return "ivf-gpu"


def build_cagra(faiss: ModuleType, snapshot: np.ndarray, gpu_id: int) -> object:
    """A CAGRA graph over `snapshot` (inner product) on GPU `gpu_id`; rows are its ids."""
    resources = faiss.StandardGpuResources()
    config = faiss.GpuIndexCagraConfig()
    config.graph_degree = CAGRA_GRAPH_DEGREE
    config.intermediate_graph_degree = CAGRA_INTERMEDIATE_DEGREE
    config.device = gpu_id
    index = faiss.GpuIndexCagra(resources, snapshot.shape[1], faiss.METRIC_INNER_PRODUCT, config)
    index.train(snapshot)  # CAGRA builds its graph in `train`; the rows are the ids
    index.referenced_resources = resources  # the index must not outlive its resources
    return index


def search_cagra(
    faiss: ModuleType, index: object, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`k` over a CAGRA index, with the search width it needs for `k`.

    faiss.contrib.torch_utils replaces `search` with a version that drops `params`; the
    original stays as `search_numpy`, so that one is called with host arrays.
    """
    params = faiss.SearchParametersCagra()
    params.itopk_size = max(_ITOPK_FLOOR, -(-k // 32) * 32)
    search = getattr(index, "search_numpy", None) or getattr(index, "search")  # noqa: B009
    scores, rows = search(np.ascontiguousarray(queries, dtype=np.float32), k, params=params)
    return scores, rows
