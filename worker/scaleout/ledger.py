"""Per user row: its input partition, whether it changed since a flush, whose state it holds.

A user's state belongs to the input partition their clicks arrive on, so each
user row remembers it (and the state topic's flush writes only the rows that
changed). A row that changes id (reused) or is freed was evicted (caps, TTL):
its old id gets a tombstone, so the state topic forgets it rather than
restore it at the next hand-over. Grown by `models.growth`'s rule, never past
the user row cap.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from models.growth import grown_capacity
from models.idmap import IdMap


class UserLedger:
    """Keeps the state topic's books per user row: its partition, if it changed, the id held."""

    def __init__(self, users: IdMap, max_rows: int | None = None) -> None:
        """Keep a ledger over the rows of `users` (the learner's map), at most `max_rows`."""
        self.users = users
        self.max_rows = max_rows
        self.owned: set[int] = set()  # input partitions this worker holds
        self._partition = np.full(0, -1, dtype=np.int32)  # per user row: its input partition
        self._dirty = np.zeros(0, dtype=bool)  # per user row: changed since the last flush
        # per user row: the id whose state this worker may have written for it (None: none)
        self._held_ids = np.full(0, None, dtype=object)
        self._tombstones: dict[int, set[str]] = {}  # partition -> evicted ids not yet deleted

    def _ensure(self) -> int:
        """Cover every row the map has handed out; returns its extent."""
        extent, have = self.users.extent, self._partition.size
        if extent > have:
            size = grown_capacity(have, extent, self.max_rows)
            partition = np.full(size, -1, dtype=np.int32)
            partition[:have] = self._partition
            dirty = np.zeros(size, dtype=bool)
            dirty[:have] = self._dirty
            held = np.full(size, None, dtype=object)
            held[:have] = self._held_ids
            self._partition, self._dirty, self._held_ids = partition, dirty, held
        return extent

    def rows_of(self, partition: int, *, dirty_only: bool) -> npt.NDArray[np.int64]:
        """Live user rows of `partition` (only those changed since the last flush)."""
        extent = self._ensure()
        mask = (self._partition[:extent] == partition) & self.users.live_mask()
        if dirty_only:
            mask &= self._dirty[:extent]
        return np.flatnonzero(mask).astype(np.int64)

    def hold(
        self,
        rows: npt.NDArray[np.int64],
        ids: npt.NDArray[np.object_],
        partitions: npt.NDArray[np.int32] | int,
        *,
        changed: bool,
    ) -> None:
        """`rows` (live) hold `ids` of `partitions` now: learned here (`changed`), or restored.

        A row that held another id was reused: that id is evicted first.
        """
        self._ensure()
        reused = (self._held_ids[rows] != None) & (self._held_ids[rows] != ids)  # noqa: E711
        self._evicted(np.unique(rows[reused]))
        self._partition[rows] = partitions
        self._dirty[rows] = changed
        self._held_ids[rows] = ids

    def flushed(self, partition: int) -> None:
        """Every changed row of `partition` was written and acknowledged."""
        self._dirty[self.rows_of(partition, dirty_only=True)] = False

    def drop(self, partition: int) -> npt.NDArray[np.int64]:
        """Forget `partition` (not ours now): its rows, to drop, and its unsent tombstones."""
        rows = self.rows_of(partition, dirty_only=False)
        self._partition[rows] = -1
        self._dirty[rows] = False
        self._held_ids[rows] = None
        self.owned.discard(partition)
        self._tombstones.pop(partition, None)  # not ours to write now
        return rows

    def take_tombstones(self, partition: int) -> list[str]:
        """Evicted ids of `partition` to delete from the state topic: those not back since.

        Call `note_freed` first, so rows freed since the last look count too.
        """
        ids = self._tombstones.pop(partition, set())
        return [user for user in sorted(ids) if self.users.lookup([user])[0] < 0]

    def refused(self, partition: int, ids: list[str]) -> None:
        """Users restored for `partition` that got no row (caps): the state topic forgets them.

        Else they stay live there for good: held by no worker, so never evicted.
        """
        if ids:
            self._tombstones.setdefault(partition, set()).update(ids)

    def note_freed(self) -> None:
        """Rows freed and not reused since they were last seen (bulk LRU, TTL): evicted."""
        extent = self._ensure()
        freed = (self._held_ids[:extent] != None) & ~self.users.live_mask()  # noqa: E711
        self._evicted(np.flatnonzero(freed))

    def _evicted(self, rows: npt.NDArray[np.int64]) -> None:
        """`rows` lost their users (freed or reused): queue a tombstone for each old id."""
        for row in rows.tolist():
            old, partition = self._held_ids[row], int(self._partition[row])
            if old is not None and partition in self.owned:
                self._tombstones.setdefault(partition, set()).add(old)
            self._held_ids[row] = None
            self._dirty[row] = False

    @property
    def unflushed(self) -> int:
        """Changed users and evicted ids not yet written to the state topic (0: all written)."""
        extent = self._ensure()
        live = self.users.live_mask()
        dirty = int((self._dirty[:extent] & live & (self._partition[:extent] >= 0)).sum())
        freed = int(((self._held_ids[:extent] != None) & ~live).sum())  # noqa: E711  (numpy)
        return dirty + freed + sum(len(ids) for ids in self._tombstones.values())
