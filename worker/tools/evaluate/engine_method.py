"""The Engine under the protocol: the same learn and rank calls the worker loop makes.

Two readings of "the user's list before the batch":
- `fresh`: ranked from the model as it stands before the batch (the protocol's
  reading, and the one every peer gets);
- `published`: the list the worker last wrote to Redis for that user, i.e. ranked
  right after the last batch that touched them. This is what `--through-kafka`
  reads back, so the two can be compared number for number.

A user without a list of their own (not learned yet: e.g. their earlier events
are in the same batch) gets the cold-start list, as a downstream app reading
the cold-start key would.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from worker.engine.engine import Engine
from worker.engine.results import Ranked
from worker.tools.evaluate.data import IntArray, Stream
from worker.tools.evaluate.protocol import SeenItems


class RecstreamMethod:
    """Drives an `Engine` (built from Settings like the worker's) with the stream's batches."""

    def __init__(self, engine: Engine, stream: Stream, published: bool = False) -> None:
        """Map between the stream's codes and the Engine's rows as rows appear."""
        self.name = "recstream (published lists)" if published else "recstream"
        self.engine = engine
        self.published = published
        self._user_ids = stream.user_ids
        self._item_ids = stream.item_ids
        self._code_of_item = {item: code for code, item in enumerate(stream.item_ids.tolist())}
        self._code_of_user = {user: code for code, user in enumerate(stream.user_ids.tolist())}
        self._lists: dict[int, IntArray] = {}
        self._cold_start = np.empty(0, dtype=np.int64)  # as published after the last batch

    def recommend(self, users: IntArray, seen: SeenItems, k: int) -> IntArray:  # noqa: ARG002
        """The Engine's lists (its own seen history does the excluding)."""
        out = np.full((users.size, k), -1, dtype=np.int64)
        if self.published:
            for n, user in enumerate(users.tolist()):
                published = self._lists.get(user, self._cold_start)
                out[n, : min(k, published.size)] = published[:k]
            return out
        rows = self.engine.known_user_rows(self._user_ids[users].tolist())
        known = rows >= 0
        if not known.all():
            cold = self._codes(self.engine.rank_cold_start())[0, :k]
            out[~known, : cold.size] = cold
        if known.any():
            ranked = self.engine.rank(torch.from_numpy(rows[known]))
            codes = self._codes(ranked)[:, :k]
            out[known, : codes.shape[1]] = codes
        return out

    def learn(self, users: IntArray, items: IntArray, ts: npt.NDArray[np.float64]) -> None:
        """`Engine.learn`, weight 1 per click; `published`: rank touched users as the loop does."""
        engine = self.engine
        learned = engine.learn(
            self._user_ids[users].tolist(),
            self._item_ids[items].tolist(),
            ts,
            np.ones(users.size, dtype=np.float32),
        )
        if not self.published:
            return
        cold = self._codes(engine.rank_cold_start())[0]
        self._cold_start = cold[cold >= 0]
        ranked = engine.rank(learned.to_rank)
        codes = self._codes(ranked)
        user_ids = engine.learner.users.ids_of(ranked.user_rows).tolist()
        for user, row in zip(user_ids, codes, strict=True):
            self._lists[self._code_of_user[user]] = row[row >= 0]

    def _codes(self, ranked: Ranked) -> IntArray:
        """Engine item rows as stream item codes (-1 stays -1), through the ids.

        Rows are looked up each time, not cached: a bounded Engine reuses the rows
        of evicted items for new ones.
        """
        rows = ranked.item_rows
        valid = rows >= 0
        ids = self.engine.learner.items.ids_of(rows[valid]).tolist()
        code_of = self._code_of_item
        codes = np.full(rows.shape, -1, dtype=np.int64)
        codes[valid] = np.fromiter((code_of[i] for i in ids), np.int64, len(ids))
        return codes
