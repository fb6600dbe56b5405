"""A dynamic map from external string ids to dense table rows, with holes.

Rows are handed out in order of first sight. A released row becomes a hole
(no id maps to it) and is handed out again, before any new row at the end, so
tables only grow while there are no holes to fill. `extent` is how many rows
have ever been handed out (live or hole): the tables hold that many.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from models.errors import ModelError, StateError
from models.growth import grown_capacity
from models.state import JSON, StateDict, sequence


class IdMap:
    """Bidirectional id ↔ row map that grows as new ids appear and reuses released rows.

    >>> ids = IdMap()
    >>> ids.rows_for(["a", "b", "a"]).tolist()
    [0, 1, 0]
    >>> ids.ids_of(np.array([[1, 0]])).tolist()
    [['b', 'a']]
    >>> ids.release(np.array([0]))
    >>> ids.ids(), ids.rows_for(["c"]).tolist()
    ([None, 'b'], [0])
    """

    def __init__(self, ids: Iterable[str | None] = ()) -> None:
        """Start empty, or from ids in row order, None for a hole (as checkpoints store them)."""
        self._fill(ids)

    def _fill(self, ids: Iterable[str | None]) -> None:
        self._row: dict[str, int] = {}
        self._ids: npt.NDArray[np.object_] = np.empty(1024, dtype=object)
        self._live: npt.NDArray[np.bool_] = np.zeros(1024, dtype=bool)
        self._extent = 0
        self._free: list[int] = []  # a stack: the most recently released row is reused first
        for key in ids:
            row = self._grow_one()
            if key is None:
                self._free.append(row)
            elif key in self._row:
                raise ModelError(f"id {key!r} twice in the row list")
            else:
                self._set(row, key)
        self._free.reverse()  # the lowest hole is reused first after a restore

    def state_dict(self) -> StateDict:
        """Every row's id in row order, None for a hole: holes are state (their rows exist)."""
        ids: list[JSON] = list(self.ids())
        return {"ids": ids}

    def load_state_dict(self, state: StateDict) -> None:
        """Take `state_dict()` output in place (holders of this map see the new ids)."""
        ids = [key for key in sequence(state, "ids") if key is None or isinstance(key, str)]
        named = [key for key in ids if key is not None]
        if len(ids) != len(sequence(state, "ids")) or len(set(named)) != len(named):
            raise StateError("ids: every entry must be a distinct string or null")
        self._fill(ids)  # checked first: a refused state leaves the map as it was

    def __len__(self) -> int:
        """Number of live ids (rows in use)."""
        return len(self._row)

    def __contains__(self, key: object) -> bool:
        """Whether an id has a row."""
        return key in self._row

    @property
    def extent(self) -> int:
        """Rows ever handed out, live or hole: the rows a table must hold."""
        return self._extent

    @property
    def free_count(self) -> int:
        """Holes waiting to be reused."""
        return len(self._free)

    def _grow_one(self) -> int:
        row = self._extent
        if row == len(self._ids):
            capacity = grown_capacity(len(self._ids), row + 1, None)
            ids = np.empty(capacity, dtype=object)
            ids[:row] = self._ids
            live = np.zeros(capacity, dtype=bool)
            live[:row] = self._live
            self._ids, self._live = ids, live
        self._extent += 1
        return row

    def _set(self, row: int, key: str) -> None:
        self._ids[row] = key
        self._live[row] = True
        self._row[key] = row

    def _add(self, key: str) -> int:
        row = self._free.pop() if self._free else self._grow_one()
        self._set(row, key)
        return row

    def rows_for(self, ids: Sequence[str]) -> npt.NDArray[np.int64]:
        """Rows of `ids`, giving new ids a hole or else the next row at the end (no limit)."""
        row_of = self._row
        out = np.empty(len(ids), dtype=np.int64)
        for n, key in enumerate(ids):
            row = row_of.get(key)
            out[n] = self._add(key) if row is None else row
        return out

    def lookup(self, ids: Sequence[str]) -> npt.NDArray[np.int64]:
        """Rows of `ids`, `-1` for an id without one; creates nothing."""
        get = self._row.get
        return np.fromiter((get(key, -1) for key in ids), dtype=np.int64, count=len(ids))

    def assign(self, new_ids: Sequence[str]) -> npt.NDArray[np.int64]:
        """Give each of `new_ids` (distinct, none known) a row: holes first, then the end."""
        out = np.empty(len(new_ids), dtype=np.int64)
        for n, key in enumerate(new_ids):
            if key in self._row:
                raise ModelError(f"id {key!r} already has a row")
            out[n] = self._add(key)
        return out

    def release(self, rows: npt.NDArray[np.integer]) -> None:
        """Turn live `rows` into holes: their ids are forgotten and the rows reused later."""
        for row in rows.tolist():
            if not 0 <= row < self._extent or not self._live[row]:
                raise ModelError(f"row {row} is not in use")
            del self._row[self._ids[row]]
            self._ids[row] = None
            self._live[row] = False
            self._free.append(row)

    def live_mask(self) -> npt.NDArray[np.bool_]:
        """Per row up to `extent`: whether an id holds it (a view; do not write to it)."""
        return self._live[: self._extent]

    def row(self, key: str) -> int:
        """Row of a known id; `ModelError` for an unknown one."""
        try:
            return self._row[key]
        except KeyError:
            raise ModelError(f"unknown id {key!r}") from None

    def ids_of(self, rows: npt.NDArray[np.integer]) -> npt.NDArray[np.object_]:
        """Ids at `rows` (any shape; None at a hole), vectorised through an object array."""
        if rows.size and (rows.min() < 0 or rows.max() >= self._extent):
            raise ModelError(f"row out of range 0..{self._extent - 1}")
        ids: npt.NDArray[np.object_] = self._ids[rows]
        return ids

    def ids(self) -> list[str | None]:
        """Every row's id in row order, None for a hole."""
        return list(self._ids[: self._extent])
