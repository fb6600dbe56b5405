"""The streams to evaluate on, as dense integer codes plus the flags the protocol needs.

Files go through `worker.tools.replay.read_interactions` (time order, stable ties);
the synthetic drifting streams come from `worker.testing.synthetic`: `generate` (genres)
and `generate_clustered` (1-3 clusters per user, exploration, a move to new ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from worker.testing.synthetic import SyntheticStream, generate, generate_clustered
from worker.tools.evaluate.names import SYNTHETIC
from worker.tools.replay import Interactions, read_interactions

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Stream:
    """Events in time order, ids coded 0..n-1, with the original string ids kept for the Engine."""

    name: str
    users: IntArray
    items: IntArray
    ts: npt.NDArray[np.float64]
    user_ids: npt.NDArray[np.str_]
    item_ids: npt.NDArray[np.str_]
    counted: BoolArray  # the user had an earlier event (in stream order)
    repeat: BoolArray  # the user clicked this item before: a re-consumption

    def __len__(self) -> int:
        """Number of events."""
        return int(self.users.size)

    @property
    def n_users(self) -> int:
        """Distinct users."""
        return int(self.user_ids.size)

    @property
    def n_items(self) -> int:
        """Distinct items."""
        return int(self.item_ids.size)

    @property
    def headline(self) -> BoolArray:
        """Events that enter HR/NDCG/MRR: a returning user, an item new to them."""
        return self.counted & ~self.repeat

    @property
    def headline_users(self) -> IntArray:
        """The user of each headline event, in stream order (to pair methods' hits by user)."""
        return self.users[self.headline].astype(np.int64)


def _first_occurrence(keys: IntArray) -> BoolArray:
    first = np.zeros(keys.size, dtype=bool)
    first[np.unique(keys, return_index=True)[1]] = True
    return first


def encode(name: str, data: Interactions, limit: int | None = None) -> Stream:
    """Code users and items as integers and flag first events and re-consumptions."""
    stop = len(data) if limit is None else min(limit, len(data))
    user_ids, users = np.unique(np.asarray(data.users[:stop]), return_inverse=True)
    item_ids, items = np.unique(np.asarray(data.items[:stop]), return_inverse=True)
    users, items = users.astype(np.int64), items.astype(np.int64)
    pairs = users * np.int64(item_ids.size) + items
    return Stream(
        name=name,
        users=users,
        items=items,
        ts=np.asarray(data.ts[:stop], dtype=np.float64),
        user_ids=user_ids,
        item_ids=item_ids,
        counted=~_first_occurrence(users),
        repeat=~_first_occurrence(pairs),
    )


def load_file(path: Path, limit: int | None = None) -> Stream:
    """A MovieLens `u.data` / `ratings.dat` / CSV file; every rating is a click."""
    name = path.parent.name if path.stem in ("u", "ratings") else path.stem
    return encode(name, read_interactions(path), limit)


DRIFT_AT = 0.5  # where the synthetic streams' tastes move
# 100 clicks per user at make eval's 200k events, as in ml-100k (106).
SYNTHETIC_USERS, SYNTHETIC_ITEMS = 2_000, 2_000


def _encode_drawn(name: str, drawn: SyntheticStream) -> Stream:
    data = Interactions(
        [str(u) for u in drawn.users.tolist()], [str(i) for i in drawn.items.tolist()], drawn.ts
    )
    return encode(name, data)


def drifting(
    events: int, users: int = SYNTHETIC_USERS, items: int = SYNTHETIC_ITEMS, seed: int = 7
) -> Stream:
    """The demo's genre/taste stream, with every user's taste redrawn half-way."""
    drawn = generate(events, users=users, items=items, seed=seed, drift_at=DRIFT_AT)
    return _encode_drawn(f"synthetic-genres-{events}", drawn)


def clustered(
    events: int, users: int = SYNTHETIC_USERS, items: int = SYNTHETIC_ITEMS, seed: int = 11
) -> Stream:
    """Users on 1-3 of 20 item clusters, 10% of clicks exploring, all on new clusters half-way."""
    drawn = generate_clustered(events, users=users, items=items, seed=seed, drift_at=DRIFT_AT)
    return _encode_drawn(f"synthetic-clusters-{events}", drawn)


def synthetic(kind: str, events: int) -> Stream:
    """One of `SYNTHETIC` (`names.py`) at `events` events."""
    makers = {"genres": drifting, "clusters": clustered}
    if kind not in makers:
        raise ValueError(f"unknown synthetic stream {kind!r}; choose from {', '.join(SYNTHETIC)}")
    return makers[kind](events)
