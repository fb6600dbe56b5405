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

from models.errors import ModelError, StateError
from models.idmap import IdMap
from models.state import JSON, StateDict, sequence

HIDDEN = ("remove", "ban")


class Catalogue:
    """Hidden item ids and why; a version that moves on every change, for cheap caching."""

    def __init__(self) -> None:
        """Nothing hidden."""
        self._hidden: dict[str, str] = {}
        self.version = 0
        # The control topic's next offset per partition that this state reflects: a restart
        # reads on from there, so a removal is neither lost nor applied out of order.
        self.control_offsets: dict[int, int] = {}

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

    @property
    def has_bans(self) -> bool:
        """Whether any item's clicks are being left out of learning."""
        return "ban" in self._hidden.values()

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

    def state_dict(self) -> StateDict:
        """Hidden ids as `[item, op]` pairs and the control offsets (JSON), for the checkpoint."""
        pairs: list[JSON] = [[item, op] for item, op in sorted(self._hidden.items())]
        offsets: list[JSON] = [[p, o] for p, o in sorted(self.control_offsets.items())]
        return {"hidden": pairs, "control_offsets": offsets}

    def load_state_dict(self, state: StateDict) -> None:
        """Replace the hidden ids with a checkpoint's; `StateError` if malformed."""
        hidden: dict[str, str] = {}
        for pair in sequence(state, "hidden"):
            if not (isinstance(pair, list) and len(pair) == 2 and pair[1] in HIDDEN):  # noqa: PLR2004
                raise StateError(f"hidden: expected [item, remove|ban], got {pair!r}")
            hidden[str(pair[0])] = str(pair[1])
        offsets: dict[int, int] = {}
        for pair in sequence(state, "control_offsets") if "control_offsets" in state else []:
            match pair:
                case [int(partition), int(offset)]:
                    offsets[partition] = offset
                case _:
                    raise StateError(f"control_offsets: expected [partition, offset], got {pair!r}")
        self._hidden, self.control_offsets = hidden, offsets
        self.version += 1
