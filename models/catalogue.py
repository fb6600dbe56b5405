"""The catalogue's exceptions: items taken off every list, on an operator's word.

`remove` hides an item from every list (its clicks are still learned, so a `restore`
brings it back with a model that kept up); `ban` hides it and its clicks are no longer
learned. `restore` undoes either. Ids are kept whether or not the model has a row for
them yet, so an item removed before its first click stays hidden after it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from models.errors import CheckpointError, ModelError
from models.idmap import IdMap

HIDDEN = ("remove", "ban")


class Catalogue:
    """Hidden item ids and why; a version that moves on every change, for cheap caching."""

    def __init__(self) -> None:
        """Nothing hidden."""
        self._hidden: dict[str, str] = {}
        self.version = 0

    def __len__(self) -> int:
        """Number of hidden items."""
        return len(self._hidden)

    def apply(self, op: str, item: str) -> bool:
        """Apply one `remove`, `ban` or `restore`; True when it changed anything."""
        if op == "restore":
            changed = self._hidden.pop(item, None) is not None
        elif op in HIDDEN:
            changed = self._hidden.get(item) != op
            self._hidden[item] = op
        else:
            msg = f"unknown catalogue op {op!r}"
            raise ModelError(msg)
        if changed:
            self.version += 1
        return changed

    def hidden(self) -> dict[str, str]:
        """Hidden ids and their op (`remove` or `ban`)."""
        return dict(self._hidden)

    def is_banned(self, items: Iterable[str]) -> npt.NDArray[np.bool_]:
        """Which of `items` are banned (their clicks are not learned)."""
        hidden = self._hidden
        return np.fromiter((hidden.get(i) == "ban" for i in items), dtype=np.bool_)

    def hidden_rows(self, items: IdMap) -> npt.NDArray[np.int64]:
        """The rows of hidden ids that have one."""
        if not self._hidden:
            return np.empty(0, dtype=np.int64)
        rows = items.lookup(list(self._hidden))
        return rows[rows >= 0]

    def state_dict(self) -> dict[str, object]:
        """The hidden ids, JSON-able, for the checkpoint."""
        return {"hidden": sorted([item, op] for item, op in self._hidden.items())}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Replace the hidden ids with a checkpoint's; `CheckpointError` if malformed."""
        pairs = state.get("hidden", [])
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and p[1] in HIDDEN  # noqa: PLR2004
            for p in pairs
        ):
            msg = "catalogue state: expected [[item, remove|ban], ...]"
            raise CheckpointError(msg)
        self._hidden = {str(p[0]): str(p[1]) for p in pairs}
        self.version += 1
