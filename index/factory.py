"""The index a setting names."""

from __future__ import annotations

from index.base import ItemIndex
from index.errors import ItemIndexError
from index.exact import ExactIndex
from index.ivf import IVFIndex


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
