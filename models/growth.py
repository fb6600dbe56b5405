"""Growth by doubling, clamped to a row cap: the one rule every growable table follows."""

from __future__ import annotations

MIN_CAPACITY = 1024


def grown_capacity(capacity: int, rows: int, max_rows: int | None) -> int:
    """Rows to allocate so `rows` fit: doubling from `capacity`, never past `max_rows`.

    Doubling keeps growth amortised O(1) per row; the cap wins over doubling
    (but never over `rows` itself, which the caller's maps already handed out).
    """
    grown = max(MIN_CAPACITY, capacity)
    while grown < rows:
        grown *= 2
    if max_rows is not None:
        grown = max(rows, min(grown, max_rows))
    return grown
