"""A bounded counter of ids that are not yet allowed a row."""

from __future__ import annotations

from collections.abc import Iterable

from models.errors import StateError
from models.state import JSON, StateDict, sequence


class PendingCounts:
    """Sightings of ids that have no row yet, in a dict of bounded size.

    Insertion order doubles as recency: a counted id moves to the end. When
    full, the least recently counted half is dropped in one pass (those ids
    start from zero if they come back), so memory stays bounded and each
    count costs amortised O(1).

    >>> pending = PendingCounts(capacity=4)
    >>> pending.add({"a": 1, "b": 2}, threshold=3)
    []
    >>> pending.add({"b": 1}, threshold=3), len(pending)
    (['b'], 1)
    """

    def __init__(self, capacity: int, counts: Iterable[tuple[str, int]] = ()) -> None:
        """Start empty, or from (id, count) pairs oldest first (as a checkpoint stores them)."""
        self.capacity = capacity
        self._counts: dict[str, int] = {}
        self.dropped = 0  # ids forgotten to stay within capacity, ever
        for key, count in counts:
            self._put(key, int(count))

    def __len__(self) -> int:
        """Ids being counted."""
        return len(self._counts)

    def _put(self, key: str, count: int) -> None:
        if len(self._counts) >= self.capacity:
            keep = self.capacity // 2
            drop = len(self._counts) - keep
            self._counts = dict(list(self._counts.items())[drop:])
            self.dropped += drop
        self._counts[key] = count

    def add(self, sightings: dict[str, int], threshold: int) -> list[str]:
        """Count `sightings`; return the ids that reached `threshold` (no longer counted here)."""
        ready = []
        counts = self._counts
        for key, seen in sightings.items():
            total = counts.pop(key, 0) + seen
            if total >= threshold:
                ready.append(key)
            else:
                self._put(key, total)
        return ready

    def put_back(self, keys: Iterable[str], count: int) -> None:
        """Keep counting ids that were ready but found no row (they get one next time)."""
        for key in keys:
            self._put(key, count)

    def items(self) -> list[tuple[str, int]]:
        """(id, count) pairs, least recently counted first."""
        return list(self._counts.items())

    def state_dict(self) -> StateDict:
        """The counts as `[id, count]` pairs, least recently counted first (order is recency)."""
        counts: list[JSON] = [[key, count] for key, count in self._counts.items()]
        return {"counts": counts}

    def load_state_dict(self, state: StateDict) -> None:
        """Count from `state_dict()` output alone (what was counted before is dropped)."""
        pairs: list[tuple[str, int]] = []
        for pair in sequence(state, "counts"):
            match pair:
                case [str(key), int(count)] if not isinstance(count, bool):
                    pairs.append((key, count))
                case _:
                    raise StateError(f"counts: {pair!r} is not an [id, count] pair")
        self._counts = {}
        for key, count in pairs:
            self._put(key, count)
