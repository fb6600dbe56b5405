"""The index a setting names."""

from __future__ import annotations

from types import ModuleType

import faiss as _faiss

from index.base import ItemIndex
from index.errors import ItemIndexError
from index.exact import ExactIndex
from index.gpu_ann import choose_kind
from index.ivf import IVFIndex


def make_index(
    kind: str,
    *,
    nlist: int = 0,
    nprobe: int = 16,
    refresh_s: float = 30.0,
    refresh_updates: int = 100_000,
    coded_from: int = 200_000,
    device_type: str = "cpu",
    faiss: ModuleType = _faiss,
) -> ItemIndex:
    """The index named by a setting: `exact` (default) or `ivf` for large catalogues.

    `ivf` builds CAGRA, GPU IVF or CPU IVF as this FAISS build allows, and with the model
    on a GPU but no GPU FAISS it is exact search on the torch path (`index.gpu_ann`).
    """
    if kind not in ("exact", "ivf"):
        raise ItemIndexError(f"unknown index kind {kind!r}: use exact or ivf")
    kind = choose_kind(kind, device_type, faiss)
    if kind == "exact":
        return ExactIndex()
    if kind == "ivf":
        return IVFIndex(
            nlist=nlist,
            nprobe=nprobe,
            refresh_s=refresh_s,
            refresh_updates=refresh_updates,
            coded_from=coded_from,
        )
    raise ItemIndexError(f"unknown index kind {kind!r}: use exact or ivf")
