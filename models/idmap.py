"""A dynamic map from external string ids to dense table rows.

Rows are handed out in order of first sight and never reused, so a row number
is stable for the life of the map and tables can simply grow at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from models.errors import ModelError


class IdMap:
    """Bidirectional id ↔ row map that grows as new ids appear.

    >>> ids = IdMap()
    >>> ids.rows_for(["a", "b", "a"]).tolist()
    [0, 1, 0]
    >>> ids.ids_of(np.array([[1, 0]])).tolist()
    [['b', 'a']]
    """

    def __init__(self, ids: Iterable[str] = ()) -> None:
        """Start empty, or from ids in row order (as a checkpoint stores them)."""
        self._row: dict[str, int] = {}
        self._ids: npt.NDArray[np.object_] = np.empty(1024, dtype=object)
        for key in ids:
            self._add(key)

    def __len__(self) -> int:
        """Number of ids (and rows) known."""
        return len(self._row)

    def __contains__(self, key: object) -> bool:
        """Whether an id already has a row."""
        return key in self._row

    def _add(self, key: str) -> int:
        row = len(self._row)
        if row == len(self._ids):
            grown = np.empty(2 * len(self._ids), dtype=object)
            grown[:row] = self._ids
            self._ids = grown
        self._ids[row] = key
        self._row[key] = row
        return row

    def rows_for(self, ids: Sequence[str]) -> npt.NDArray[np.int64]:
        """Rows of `ids`, giving new ids the next free rows."""
        row_of = self._row
        out = np.empty(len(ids), dtype=np.int64)
        for n, key in enumerate(ids):
            row = row_of.get(key)
            out[n] = self._add(key) if row is None else row
        return out

    def row(self, key: str) -> int:
        """Row of a known id; `ModelError` for an unknown one."""
        try:
            return self._row[key]
        except KeyError:
            raise ModelError(f"unknown id {key!r}") from None

    def ids_of(self, rows: npt.NDArray[np.integer]) -> npt.NDArray[np.object_]:
        """Ids at `rows` (any shape), vectorised through an object array."""
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise ModelError(f"row out of range 0..{len(self) - 1}")
        ids: npt.NDArray[np.object_] = self._ids[rows]
        return ids

    def ids(self) -> list[str]:
        """All ids in row order."""
        return list(self._ids[: len(self)])
