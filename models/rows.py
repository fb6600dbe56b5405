"""Bounded rows: which ids get a table row, and which lose theirs.

An endless stream of new ids must not grow memory without limit. Per kind
(users, items) a `RowKeeper` enforces a cap on rows in use, frees rows not
seen for a time-to-live, and holds back ids seen fewer than a minimum number
of times (Monolith's `occurrence_threshold` and `expire_time`).

- Last sight is one float64 per row (the batch clock), written for every row a
  batch touches: O(batch) and no more in the common case.
- At the cap, eviction is in bulk: the least recently seen `evict_fraction` of
  the cap (at least what the batch needs) is freed at once with one
  `argpartition` over the rows, so its O(rows) cost is paid once per that many
  new ids, never once per id. Rows the current batch touches are never taken.
- Ids below the occurrence threshold are counted in `PendingCounts`, a dict
  capped at `pending_capacity` entries that drops its least recently counted
  half when full (bounded memory, amortised O(1) per id).

Freed rows become holes in the `IdMap` and are reused before any row is added
at the end; the caller resets a reused row to a fresh one (`Admission.reused`).
Nothing here allocates tensors or logs: it returns rows and statistics.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from models.growth import grown_capacity
from models.idmap import IdMap
from models.pending import PendingCounts
from models.state import StateDict, part, prefixed, tensor

_EMPTY = np.empty(0, dtype=np.int64)
DEFAULT_PENDING_CAPACITY = 1 << 20  # ids counted toward the threshold, per kind, at most


@dataclass(frozen=True)
class RowLimits:
    """The bounds one kind of id lives within."""

    max_rows: int
    ttl_s: float = 0.0  # 0: ids never expire
    min_occurrences: int = 1  # 1: a row at first sight
    evict_fraction: float = 0.02  # share of max_rows freed at once when the cap is reached
    pending_capacity: int | None = None  # None: min(max_rows, DEFAULT_PENDING_CAPACITY)

    def __post_init__(self) -> None:
        """Reject limits that cannot work."""
        if self.max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {self.max_rows}")
        if not self.ttl_s >= 0:
            raise ValueError(f"ttl_s must be >= 0, got {self.ttl_s}")
        if self.min_occurrences < 1:
            raise ValueError(f"min_occurrences must be >= 1, got {self.min_occurrences}")
        if not 0 < self.evict_fraction <= 1:
            raise ValueError(f"evict_fraction must be in (0, 1], got {self.evict_fraction}")
        if self.pending_capacity is not None and self.pending_capacity < 2:  # noqa: PLR2004
            raise ValueError(f"pending_capacity must be >= 2, got {self.pending_capacity}")

    @property
    def pending_limit(self) -> int:
        """Ids the pending counter holds at most."""
        if self.pending_capacity is not None:
            return self.pending_capacity
        return max(2, min(self.max_rows, DEFAULT_PENDING_CAPACITY))


@dataclass(frozen=True)
class Admission:
    """What `RowKeeper.admit` did for one batch of ids."""

    rows: npt.NDArray[np.int64]  # per id, -1 where the id has no row
    reused: npt.NDArray[np.int64]  # rows given to new ids that held another id before: reset them
    evicted: npt.NDArray[np.int64]  # rows freed to make room (least recently seen)


class RowKeeper:
    """Row admission, least-recently-seen eviction and time-to-live for one `IdMap`."""

    def __init__(
        self,
        ids: IdMap,
        limits: RowLimits,
        *,
        last_seen: npt.NDArray[np.float64] | None = None,
        pending: Iterable[tuple[str, int]] = (),
    ) -> None:
        """Keep `ids` within `limits`; `last_seen` (per row) and `pending` from a checkpoint."""
        self.ids = ids
        self.limits = limits
        self.pending = PendingCounts(limits.pending_limit, pending)
        self._last_seen = np.zeros(grown_capacity(0, ids.extent, limits.max_rows), dtype=np.float64)
        if last_seen is not None:
            if last_seen.shape != (ids.extent,):
                raise ValueError(f"last_seen holds {last_seen.shape} rows, the map {ids.extent}")
            self._last_seen[: ids.extent] = last_seen
        self._last_expiry = -math.inf

    @property
    def last_seen(self) -> npt.NDArray[np.float64]:
        """Last sight (batch clock) per row up to `extent`; a hole keeps its old value."""
        return self._last_seen[: self.ids.extent]

    def saw(self, rows: npt.NDArray[np.int64], times: npt.NDArray[np.float64]) -> None:
        """Rows count as last seen at `times`, unless seen later here (a handed-over user)."""
        self._ensure(self.ids.extent)
        self._last_seen[rows] = np.maximum(self._last_seen[rows], times)

    def state_dict(self) -> StateDict:
        """A copy of each row's last sight (up to `extent`) and the pending counts."""
        last_seen = torch.from_numpy(self.last_seen.copy())
        return {"last_seen": last_seen} | prefixed("pending", self.pending.state_dict())

    def load_state_dict(self, state: StateDict) -> None:
        """Restore `state_dict()` output taken over a map of this extent (restore the map first)."""
        extent = self.ids.extent
        last_seen = tensor(state, "last_seen", (extent,), torch.float64).numpy()
        self.pending.load_state_dict(part(state, "pending"))
        self._last_seen = np.zeros(grown_capacity(0, extent, self.limits.max_rows), np.float64)
        self._last_seen[:extent] = last_seen

    def _ensure(self, extent: int) -> None:
        """Room for rows `0..extent-1`: doubling, never past the row cap (growth.py)."""
        if extent > len(self._last_seen):
            capacity = grown_capacity(len(self._last_seen), extent, self.limits.max_rows)
            grown = np.zeros(capacity, dtype=np.float64)
            grown[: len(self._last_seen)] = self._last_seen
            self._last_seen = grown

    def admit(self, keys: Sequence[str], now: float) -> Admission:
        """Rows for a batch of ids seen at `now`, adding and evicting rows as the limits say."""
        ids, limits = self.ids, self.limits
        self._ensure(ids.extent)
        rows = ids.lookup(keys)
        missing = np.flatnonzero(rows < 0)
        self._last_seen[rows[rows >= 0]] = now
        if missing.size == 0:
            return Admission(rows, _EMPTY, _EMPTY)
        sightings: dict[str, int] = {}
        for n in missing.tolist():
            key = keys[n]
            sightings[key] = sightings.get(key, 0) + 1
        if limits.min_occurrences > 1:
            ready = self.pending.add(sightings, limits.min_occurrences)
        else:
            ready = list(sightings)
        if not ready:
            return Admission(rows, _EMPTY, _EMPTY)
        evicted = _EMPTY
        room = ids.free_count + max(0, limits.max_rows - ids.extent)
        if len(ready) > room:
            wanted = max(len(ready) - room, math.ceil(limits.evict_fraction * limits.max_rows))
            evicted = self._evict_oldest(wanted, protect=rows[rows >= 0])
            room += evicted.size
        if len(ready) > room:  # more new ids in one batch than the cap holds: the rest wait
            if limits.min_occurrences > 1:
                self.pending.put_back(ready[room:], limits.min_occurrences - 1)
            ready = ready[:room]
        extent_before = ids.extent
        new_rows = ids.assign(ready)
        self._ensure(ids.extent)
        self._last_seen[new_rows] = now
        row_of = dict(zip(ready, new_rows.tolist(), strict=True))
        rows[missing] = np.fromiter(
            (row_of.get(keys[n], -1) for n in missing.tolist()), dtype=np.int64, count=missing.size
        )
        return Admission(rows, new_rows[new_rows < extent_before], evicted)

    def _evict_oldest(self, count: int, protect: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Free up to `count` live rows with the oldest last sight, none of `protect`."""
        age = self.last_seen.copy()
        age[~self.ids.live_mask()] = np.inf
        age[protect] = np.inf
        candidates = int(np.isfinite(age).sum())
        count = min(count, candidates)
        if count == 0:
            return _EMPTY
        if count < candidates:
            oldest = np.argpartition(age, count - 1)[:count]
        else:
            oldest = np.flatnonzero(np.isfinite(age))
        oldest = np.sort(oldest).astype(np.int64)
        self.ids.release(oldest)
        return oldest

    def expire(self, now: float) -> npt.NDArray[np.int64]:
        """Free every live row not seen for longer than the time-to-live (none when it is 0)."""
        self._last_expiry = now
        if self.limits.ttl_s <= 0:
            return _EMPTY
        stale = self.ids.live_mask() & (self.last_seen < now - self.limits.ttl_s)
        expired = np.flatnonzero(stale).astype(np.int64)
        self.ids.release(expired)
        return expired

    def expiry_due(self, now: float) -> bool:
        """Whether a time-to-live sweep is due: every tenth of the TTL, at most once a minute."""
        if self.limits.ttl_s <= 0:
            return False
        return now - self._last_expiry >= min(self.limits.ttl_s / 10, 60.0)

    def shrink_to_cap(self) -> npt.NDArray[np.int64]:
        """Free the least recently seen rows above the cap (a checkpoint from a larger cap)."""
        excess = len(self.ids) - self.limits.max_rows
        return self._evict_oldest(excess, protect=_EMPTY) if excess > 0 else _EMPTY


@dataclass(frozen=True)
class BatchRows:
    """Rows for one batch of (user, item) events, and what admitting them freed or reused."""

    users: npt.NDArray[np.int64]  # per event, -1 where the user has no row
    items: npt.NDArray[np.int64]  # per event, -1 where the item has no row
    reused_users: npt.NDArray[np.int64]  # reset these before use: they held another user
    reused_items: npt.NDArray[np.int64]  # reset these before use: they held another item
    freed_items: npt.NDArray[np.int64]  # item rows freed in this call (mask them until reused)
    evictions: dict[tuple[str, str], int]  # (kind, cause) -> rows freed; causes lru and ttl

    @property
    def learnable(self) -> npt.NDArray[np.bool_]:
        """Events whose user and item both have a row."""
        mask: npt.NDArray[np.bool_] = (self.users >= 0) & (self.items >= 0)
        return mask


class RowPolicy:
    """The user and item `RowKeeper`s, applied together to each batch."""

    def __init__(self, users: RowKeeper, items: RowKeeper) -> None:
        """Pair the keepers; each holds its own limits."""
        self.users = users
        self.items = items

    @classmethod
    def over(
        cls,
        users: IdMap,
        items: IdMap,
        user_limits: RowLimits,
        item_limits: RowLimits,
        state: StateDict | None = None,
    ) -> RowPolicy:
        """Keepers over a learner's id maps, from a checkpoint's `state` when there is one."""
        policy = cls(RowKeeper(users, user_limits), RowKeeper(items, item_limits))
        if state is not None:
            policy.load_state_dict(state)
        return policy

    def state_dict(self) -> StateDict:
        """Both keepers' state, under `users.` and `items.` (the limits are settings, not state)."""
        return prefixed("users", self.users.state_dict()) | prefixed(
            "items", self.items.state_dict()
        )

    def load_state_dict(self, state: StateDict) -> None:
        """Restore `state_dict()` output over id maps restored first."""
        self.users.load_state_dict(part(state, "users"))
        self.items.load_state_dict(part(state, "items"))

    def admit(self, users: Sequence[str], items: Sequence[str], now: float) -> BatchRows:
        """Expire what is due, then give the batch's ids rows (evicting at a cap)."""
        evictions: dict[tuple[str, str], int] = {}
        freed_items = [_EMPTY]
        for kind, keeper in (("user", self.users), ("item", self.items)):
            if keeper.expiry_due(now):
                expired = keeper.expire(now)
                evictions[kind, "ttl"] = int(expired.size)
                if kind == "item":
                    freed_items.append(expired)
        user_admission = self.users.admit(users, now)
        item_admission = self.items.admit(items, now)
        evictions["user", "lru"] = int(user_admission.evicted.size)
        evictions["item", "lru"] = int(item_admission.evicted.size)
        freed_items.append(item_admission.evicted)
        return BatchRows(
            users=user_admission.rows,
            items=item_admission.rows,
            reused_users=user_admission.reused,
            reused_items=item_admission.reused,
            freed_items=np.concatenate(freed_items),
            evictions={key: n for key, n in evictions.items() if n},
        )

    def shrink_to_caps(self) -> BatchRows:
        """Free rows above the caps (after restoring a checkpoint written under larger ones)."""
        users, items = self.users.shrink_to_cap(), self.items.shrink_to_cap()
        evictions = {("user", "lru"): int(users.size), ("item", "lru"): int(items.size)}
        return BatchRows(
            _EMPTY, _EMPTY, _EMPTY, _EMPTY, items, {k: n for k, n in evictions.items() if n}
        )
