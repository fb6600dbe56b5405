"""The index choice by FAISS build, against fake `faiss` modules (a package boundary)."""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest

from index.exact import ExactIndex
from index.factory import make_index
from index.gpu_ann import CAGRA_MIN_ROWS, build_cagra, choose_build, search_cagra
from index.ivf import IVFIndex


class _Config:
    """Stands in for GpuIndexCagraConfig: attributes set on it are kept."""


class _SearchParameters:
    """Stands in for SearchParametersCagra."""

    itopk_size = 64


class _Cagra:
    """Records how the CAGRA index was made and searched."""

    def __init__(self, resources: object, dim: int, metric: int, config: _Config) -> None:
        self.made = (resources, dim, metric, config)
        self.trained: np.ndarray | None = None
        self.searched: tuple[Any, ...] | None = None

    def train(self, x: np.ndarray) -> None:
        self.trained = x

    def search_numpy(self, x: np.ndarray, k: int, *, params: Any) -> tuple[Any, Any]:
        self.searched = (x, k, params)
        return np.zeros((len(x), k), np.float32), np.zeros((len(x), k), np.int64)

    def search(self, *_args: object) -> None:  # torch_utils replaces it, dropping params
        raise AssertionError("the params-dropping search was called")


def _faiss(gpus: int, *, gpu_build: bool = True, cuvs: bool = False) -> types.ModuleType:
    """A fake `faiss`: a CPU build, a CUDA-12 GPU build, or a cuVS build, with `gpus` GPUs."""
    fake = types.ModuleType("faiss")
    fake.METRIC_INNER_PRODUCT = 0  # type: ignore[attr-defined]
    fake.get_num_gpus = lambda: gpus  # type: ignore[attr-defined]
    if gpu_build:
        fake.index_cpu_to_gpu = lambda *_: None  # type: ignore[attr-defined]
        fake.StandardGpuResources = object  # type: ignore[attr-defined]
    if cuvs:
        fake.GpuIndexCagra = _Cagra  # type: ignore[attr-defined]
        fake.GpuIndexCagraConfig = _Config  # type: ignore[attr-defined]
        fake.SearchParametersCagra = _SearchParameters  # type: ignore[attr-defined]
    return fake


LARGE, SMALL = CAGRA_MIN_ROWS, CAGRA_MIN_ROWS - 1


@pytest.mark.parametrize(
    ("faiss", "gpu", "rows", "expected"),
    [
        (_faiss(1, cuvs=True), True, LARGE, "cagra"),
        (_faiss(1, cuvs=True), True, SMALL, "ivf-gpu"),  # small: IVF trains in seconds
        (_faiss(1), True, LARGE, "ivf-gpu"),  # faiss-gpu-cu12: no CAGRA
        (_faiss(0, cuvs=True), True, LARGE, "ivf-cpu"),  # a cuVS build on a host without GPU
        (_faiss(0, gpu_build=False), True, LARGE, "ivf-cpu"),  # faiss-cpu
        (_faiss(1, cuvs=True), False, LARGE, "ivf-cpu"),  # the model is on the CPU
    ],
    ids=["cuvs-large", "cuvs-small", "cu12", "cuvs-no-gpu", "cpu-build", "model-on-cpu"],
)
def test_the_build_follows_what_faiss_can_do(
    faiss: types.ModuleType, gpu: bool, rows: int, expected: str
) -> None:
    """CAGRA for large catalogues on a cuVS build with a GPU, GPU IVF without cuVS, else CPU."""
    assert choose_build(faiss, gpu=gpu, rows=rows) == expected


def test_a_failing_gpu_probe_counts_as_no_gpu() -> None:
    """A build whose GPU probe raises chooses the CPU, as a CPU build would."""
    fake = _faiss(1, cuvs=True)

    def broken() -> int:
        raise RuntimeError("CUDA driver version is insufficient")

    fake.get_num_gpus = broken  # type: ignore[attr-defined]
    assert choose_build(fake, gpu=True, rows=LARGE) == "ivf-cpu"


def test_the_factory_keeps_the_torch_path_as_the_fallback() -> None:
    """`ivf` with the model on a GPU but no GPU FAISS is exact search; otherwise the setting's."""
    cpu_build = _faiss(0, gpu_build=False)
    assert isinstance(make_index("ivf", device_type="cuda", faiss=cpu_build), ExactIndex)
    assert isinstance(make_index("ivf", device_type="cpu", faiss=cpu_build), IVFIndex)
    assert isinstance(make_index("ivf", device_type="cuda", faiss=_faiss(1, cuvs=True)), IVFIndex)
    assert isinstance(make_index("exact", device_type="cuda", faiss=cpu_build), ExactIndex)


def test_cagra_is_built_for_inner_product_on_the_models_gpu() -> None:
    """The graph is trained on the snapshot, inner product, on the given device."""
    snapshot = np.ones((8, 4), np.float32)
    index = build_cagra(_faiss(2, cuvs=True), snapshot, gpu_id=1)
    assert isinstance(index, _Cagra)
    _, dim, metric, config = index.made
    assert (dim, metric, config.device) == (4, 0, 1)  # type: ignore[attr-defined]
    assert config.graph_degree <= config.intermediate_graph_degree  # type: ignore[attr-defined]
    assert index.trained is snapshot


def test_cagra_search_widens_itopk_to_k_and_keeps_its_params() -> None:
    """itopk_size is at least k (cuVS requires it) and the params reach the search."""
    fake = _faiss(1, cuvs=True)
    index = _Cagra(None, 4, 0, _Config())
    _, rows = search_cagra(fake, index, np.ones((3, 4)), k=200)
    assert rows.shape == (3, 200)
    assert index.searched is not None
    queries, k, params = index.searched
    assert queries.dtype == np.float32
    assert k == 200
    assert params.itopk_size >= 200
    search_cagra(fake, index, np.ones((3, 4)), k=10)
    assert index.searched[2].itopk_size == 64
