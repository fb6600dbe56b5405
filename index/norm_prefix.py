"""Exact top-k on a CPU over the items with the largest norms first, the rest only where needed.

An inner product is at most the product of the norms (Cauchy-Schwarz), so once a
user's k-th best score among the `size` items of largest norm beats `|q|` times
the largest norm left out, no other item can enter that user's top k. Learned
item norms are skewed (popular items grow long vectors), so on the bench's load
(10^4 items, Zipf 0.9) the median user's top 50 is settled by its 150 longest
items and 99 % of users by 541 (2026-12-07): scoring a prefix of 512 for every
user and the whole catalogue for the few it leaves unsettled reads a tenth of
the matrix product and top-k a dense search reads.

Only on a CPU: which users are unsettled is known only by reading the scores
back, which an accelerator would wait on, and its dense search is cheap anyway.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

PREFIX_MIN = 512  # items scored for every user, at the least
PREFIX_PER_K = 8  # and at least this many per wanted item
CATALOGUE_PER_PREFIX = 4  # only where the prefix is at most a quarter of the catalogue
# The bound is compared with scores a matrix product rounded: a relative slack far above
# float32's rounding of a 64-term sum keeps a near-tie on the bound from being missed.
BOUND_SLACK = 1e-4
# Where most users are left unsettled (norms alike, as in a young model) the prefix only adds
# work: past this share, decayed over about `SHARE_MEMORY_USERS` users searched, it is not
# offered, and it is tried again every `RETRY_EVERY` index versions.
MOST_UNSETTLED = 0.5
SHARE_MEMORY_USERS = 4096
RETRY_EVERY = 16


@dataclass(frozen=True)
class NormPrefix:
    """The `size` rows of largest norm, their vectors, and the largest norm left out."""

    items: torch.Tensor  # the whole matrix it was taken from
    rows: torch.Tensor  # [size] item rows, longest first
    vectors: torch.Tensor  # [size, dim] float32, contiguous
    position: torch.Tensor  # [items] a row's place in `rows`, -1 outside
    bound: float  # the largest norm among the items outside the prefix
    note: Callable[[int, int], None]  # (unsettled, users) of a search, for `NormPrefixCache`


def prefix_size(k: int, items: int) -> int:
    """How many items to score for every user (0: the catalogue is too small to prune)."""
    size = max(PREFIX_MIN, PREFIX_PER_K * k)
    return size if items >= CATALOGUE_PER_PREFIX * size else 0


class NormPrefixCache:
    """The prefixes of one index version, shared by the threads ranking side by side.

    It also keeps the share of users its searches left unsettled, decayed per user
    searched (a one-user search barely moves it), and offers no prefix while that
    share says a prefix costs more than it saves.
    """

    def __init__(self) -> None:
        """Start empty: built on first use."""
        self._lock = threading.Lock()
        self._version: tuple[int, int, int] | None = None
        self._prefixes: dict[int, NormPrefix] = {}  # by size, for the current version
        self._paying = True
        self._unsettled = 0.0
        self._versions = 0

    def get(self, items: torch.Tensor, version: int, size: int) -> NormPrefix | None:
        """The `size` prefix of `items` as of `version` (None: not paying lately)."""
        key = (version, items.data_ptr(), items.shape[0])
        with self._lock:
            if self._version != key:
                self._version = key
                self._versions += 1
                self._prefixes.clear()
                retry = self._versions % RETRY_EVERY == 0
                self._paying = self._unsettled <= MOST_UNSETTLED or retry
            if not self._paying:
                return None
            if size not in self._prefixes:
                self._prefixes[size] = _build(items, size, self._note)
            return self._prefixes[size]

    @property
    def unsettled_share(self) -> float:
        """The decayed share of users the last searches left for the whole catalogue."""
        return self._unsettled

    def _note(self, unsettled: int, users: int) -> None:
        if users:
            weight = -math.expm1(-users / SHARE_MEMORY_USERS)
            with self._lock:
                self._unsettled += weight * (unsettled / users - self._unsettled)


def _build(items: torch.Tensor, size: int, note: Callable[[int, int], None]) -> NormPrefix:
    norms = torch.linalg.vector_norm(items.float(), dim=1)
    longest = norms.topk(size + 1)  # sorted: the last one is the largest left out
    rows = longest.indices[:size]
    position = torch.full((items.shape[0],), -1, dtype=torch.int64, device=items.device)
    position[rows] = torch.arange(size, device=items.device)
    vectors = items.index_select(0, rows).float().contiguous()
    return NormPrefix(items, rows, vectors, position, float(longest.values[size]), note)


def unsettled(queries: torch.Tensor, kth: torch.Tensor, bound: float) -> torch.Tensor:
    """Users whose k-th best prefix score an item outside the prefix might still beat."""
    reach = torch.linalg.vector_norm(queries.float(), dim=1) * (bound * (1 + BOUND_SLACK))
    settled: torch.Tensor = kth > reach  # a k-th of -inf (fewer than k in the prefix) is not
    return ~settled


PAIR_CHUNK = 4096  # pairs per step: both gathered operands stay in cache (2 MiB)


def pair_scores(
    queries: torch.Tensor, items: torch.Tensor, users: torch.Tensor, rows: torch.Tensor
) -> torch.Tensor:
    """Inner products of `queries[users[n]]` with `items[rows[n]]`, one per pair.

    Gathered by `index_select` a cache-sized step at a time: advanced indexing and
    a multiply-then-sum over all 30,000 pairs of a 1,024-user chunk at once took
    several times as long (2026-12-07).
    """
    out = torch.empty(rows.shape[0], device=items.device)
    for at in range(0, rows.shape[0], PAIR_CHUNK):
        part = slice(at, at + PAIR_CHUNK)
        mine = items.index_select(0, rows[part]).float()
        torch.linalg.vecdot(mine, queries.index_select(0, users[part]).float(), out=out[part])
    return out


__all__ = [
    "NormPrefix",
    "NormPrefixCache",
    "pair_scores",
    "prefix_size",
    "unsettled",
]
