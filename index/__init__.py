"""The item index: exact or IVF search over the learner's item vectors, with exclusions."""

from index.base import ItemIndex
from index.errors import ItemIndexError
from index.exact import ExactIndex
from index.exclusion import TopK, top_k_excluding
from index.extra import ExtraScores
from index.ivf import IVFIndex
from index.knn import HAS_FAISS_GPU, backend_for, knn, torch_knn

__all__ = [
    "HAS_FAISS_GPU",
    "ExactIndex",
    "ExtraScores",
    "IVFIndex",
    "ItemIndex",
    "ItemIndexError",
    "TopK",
    "backend_for",
    "knn",
    "make_index",
    "top_k_excluding",
    "torch_knn",
]


def make_index(
    kind: str,
    *,
    nlist: int = 0,
    nprobe: int = 16,
    refresh_s: float = 30.0,
    refresh_updates: int = 100_000,
) -> ItemIndex:
    """The index named by a setting: `exact` (default) or `ivf` for large catalogues."""
    if kind == "exact":
        return ExactIndex()
    if kind == "ivf":
        return IVFIndex(
            nlist=nlist, nprobe=nprobe, refresh_s=refresh_s, refresh_updates=refresh_updates
        )
    raise ItemIndexError(f"unknown index kind {kind!r}: use exact or ivf")
