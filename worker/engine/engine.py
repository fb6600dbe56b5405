"""The model side of a batch, with no I/O: map ids, learn, keep the index fresh, rank.

The worker loop and the offline evaluation both drive this one class, so what
`recstream eval` measures is what `recstream run` publishes.

Rows are bounded by a `RowPolicy` (caps, least-recently-seen eviction, TTL,
occurrence threshold). An event whose user or item has no row is not learned
(its offset is still committed, like every decoded event); a user without a
row gets no list. A row handed to a new id is reset to a fresh one first, so
a returning evicted user starts cold (a list driven by item biases, i.e.
popularity). Free item rows are masked out of every list until reused.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

import numpy as np
import structlog
import torch

from index.base import ItemIndex
from index.exclusion import top_k_excluding
from models.catalogue import Catalogue
from models.growth import grown_capacity
from models.learner import OnlineLearner
from models.rows import BatchRows, RowLimits, RowPolicy
from models.vectors import Vectors
from models.warm_start import Installed, install_vectors
from stream.payload import RankedLists, Recommendation
from worker.engine.between_sessions import RestingUsers
from worker.engine.results import Learned, Ranked
from worker.engine.stage_config import StageConfig
from worker.engine.transfer import Transfers
from worker.engine.two_stage import TwoStage

log = structlog.get_logger("recstream.worker")
_EMPTY = np.empty(0, dtype=np.int64)


class Engine:
    """Learner, seen history and item index, advanced together one micro-batch at a time."""

    def __init__(
        self,
        learner: OnlineLearner,
        index: ItemIndex,
        top_k: int,
        rows: RowPolicy | None = None,
        catalogue: Catalogue | None = None,
        stages: StageConfig | None = None,
        learn_chunk: int | None = None,
        static_shapes: bool | None = None,
    ) -> None:
        """Tie the parts together; the caller owns their lifetimes.

        The seen history is the learner's (`learner.history`, built as wide as lists
        exclude): the learner writes each batch's clicks into it, the lists exclude what
        it holds and the candidate sources start from it.

        Without `rows`, ids are never evicted (a policy with caps of 2**62). `catalogue`
        holds the items an operator took off the lists (none by default). `stages`
        configures the candidate sources and the ranker (`worker.engine.two_stage`);
        `learn_chunk`, the most events one gradient step takes (None: a whole batch);
        `static_shapes`, rank with no data-sized shapes (default: on a device only).
        """
        self.learn_chunk = learn_chunk
        self.learner = learner
        self.catalogue = catalogue or Catalogue()
        self.history = learner.history
        self.transfers = Transfers(learner.device)
        self.index = index
        self.top_k = top_k
        unbounded = RowLimits(max_rows=1 << 62)
        self.rows = rows or RowPolicy.over(learner.users, learner.items, unbounded, unbounded)
        learner.cap_rows(self.rows.users.limits.max_rows, self.rows.items.limits.max_rows)
        config = learner.config
        stages = stages or StageConfig()
        # the vector source alone must be able to fill a list
        stages = dataclasses.replace(stages, vector=max(stages.vector, top_k))
        self.stages = TwoStage(
            learner,
            index,
            stages,
            clock=config.popularity_clock,
            tau=config.popularity_tau,
            static_shapes=static_shapes,
            top_k=top_k,
        )
        self.stages.trending.max_rows = self.rows.items.limits.max_rows
        self.clock = float(self.rows.users.last_seen.max(initial=0.0))
        # the newest event time folded in (the cold-start list's `event_ts`): the clock
        # stops at each batch's watermark, this does not
        newest = learner.history.last_ts[: learner.users.extent]
        self.newest_ts = max(self.clock, float(newest.max()) if newest.numel() else 0.0)
        self.resting = RestingUsers(self.stages.config, self.clock)
        self._free_items = torch.zeros(0, dtype=torch.bool, device=self.device)
        holes = np.flatnonzero(~learner.items.live_mask())
        self._sync_free_items(torch.from_numpy(holes).to(self.device))
        shrunk = self.rows.shrink_to_caps()  # a checkpoint written under larger caps
        self._apply(shrunk)
        self.initial_evictions = shrunk.evictions

    @property
    def device(self) -> torch.device:
        """Where the tensors live."""
        return self.learner.device

    def learn(
        self,
        users: Sequence[str],
        items: Sequence[str],
        event_ts: np.ndarray,
        weights: np.ndarray,
        watermark: float = math.inf,
        backlog: bool = False,
    ) -> Learned:
        """Fold a batch of clicks in, in steps of at most `learn_chunk` events, in order.

        `watermark`: the event time every input partition still behind has reached
        (`worker.loop.event_clock`). The batch clock goes no further: when one
        partition runs ahead of the others (a backlog read unevenly), its newest
        event would otherwise move the clock on for all of them, and every user of
        the partitions behind would look idle and every click on them old.

        `backlog`: more is waiting to be read. Users falling idle then wait, within a
        bound, for a batch with room (`RestingUsers.due`).

        A batch grown under a backlog is still learned as batches of the configured
        size would be (one gradient step each): a batch of 6,000 taken as one step
        learns what 12 steps of 512 learn badly. The ranker is taught before each step
        (test, then train); the lists are ranked and published once: that is what a
        large batch saves.
        Clicks on banned items are left out (counted as unlearned): a ban stops the
        model learning an item's popularity, where a removal only hides it.
        """
        banned = 0
        if self.catalogue.has_bans:
            keep = ~self.catalogue.is_banned(items)
            banned = len(items) - int(keep.sum())
            if banned:
                kept = np.flatnonzero(keep).tolist()
                users, items = [users[n] for n in kept], [items[n] for n in kept]
                event_ts, weights = event_ts[keep], weights[keep]
        chunk = self.learn_chunk
        if chunk is None or len(users) <= chunk:
            learned = self._learn(users, items, event_ts, weights, banned, watermark)
            resting = self._resting(learned.touched.numel(), backlog)
            return dataclasses.replace(learned, resting=resting)
        parts = [
            self._learn(
                users[at : at + chunk],
                items[at : at + chunk],
                event_ts[at : at + chunk],
                weights[at : at + chunk],
                banned if at == 0 else 0,
                watermark,
            )
            for at in range(0, len(users), chunk)
        ]
        evictions: dict[tuple[str, str], int] = {}
        for part in parts:
            for key, rows in part.evictions.items():
                evictions[key] = evictions.get(key, 0) + rows
        changed = [p.changed_items for p in parts if p.changed_items is not None]
        touched = torch.unique(torch.cat([p.touched for p in parts]))
        return Learned(
            float(np.mean([p.loss for p in parts])),
            touched,
            sum(p.unlearned for p in parts),
            evictions,
            torch.cat(changed) if changed else None,
            self._resting(touched.numel(), backlog),
        )

    def _resting(self, touched: int, backlog: bool) -> torch.Tensor:
        """User rows that have just fallen idle: their lists are ranked again, between sessions."""
        keeper = self.rows.users
        due = self.resting.due(self.clock, keeper.last_seen, keeper.ids, touched, backlog)
        return torch.from_numpy(due).to(self.device)

    def _learn(
        self,
        users: Sequence[str],
        items: Sequence[str],
        event_ts: np.ndarray,
        weights: np.ndarray,
        banned: int = 0,
        watermark: float = math.inf,
    ) -> Learned:
        """Teach the ranker one step's clicks, then fold them into the model, history and index.

        The ranker learns before each step, on candidates from the model as it stands:
        a backlogged batch taught once from the state before all of it teaches clicks
        late in it against candidates that miss their user's earlier clicks in the
        batch (contract-check's replay fell from 0.54 to 0.39-0.48 HR@10 so).
        """
        learner = self.learner
        if learner.items.extent:
            self._fit_ranker(users, items)
        admitted = self.rows.admit(users, items, self._advance_clock(event_ts, watermark))
        reused_items = self._apply(admitted)
        learnable = admitted.learnable
        unlearned = len(users) - int(learnable.sum())
        if unlearned:
            event_ts, weights = event_ts[learnable], weights[learnable]
        learner.check_rows(admitted.users[learnable], admitted.items[learnable])  # host, pre-upload
        with_row = np.unique(admitted.users[admitted.users >= 0])  # on the host, then uploaded
        # The step's rows, weights, times and touched users go up as one copy.
        user_rows, item_rows, weight, times, touched = self.transfers.upload(
            admitted.users[learnable].astype(np.int64, copy=False),
            admitted.items[learnable].astype(np.int64, copy=False),
            weights.astype(np.float32, copy=False),
            event_ts.astype(np.float64, copy=False),
            with_row.astype(np.int64, copy=False),
        )
        # The prior's time clock reads the batch clock: never past the wall clock, so one
        # event stamped in the future cannot age every item at once; the seen history keeps
        # each click's own time. `check=False`: the step is not read back inside; its loss
        # and flag are read once, below.
        stats = learner.learn(
            user_rows, item_rows, weight, event_ts=self.clock, click_ts=times, check=False
        )
        changed = stats.changed
        self.stages.observe(item_rows, weight, self.clock)
        if reused_items.numel():  # reset rows whose events were not learned changed too
            changed = torch.cat([changed, reused_items])
        self.index.refresh(learner.item_vectors(), changed)
        synced = torch.cat([changed, stats.context_rows])  # what the item sync sends
        loss, applied = stats.read()  # the batch's one read-back
        if not applied:
            # The step was not applied; the lists still go out from the model as it stands.
            log.error("batch_not_learned", events=len(users), reason="non-finite loss")
            loss = float("nan")
        return Learned(loss, touched, unlearned + banned, admitted.evictions, synced)

    # -- for scale-out (worker/scaleout/): rows for ids that arrive from other workers --------

    def admit_items(self, items: Sequence[str]) -> np.ndarray:
        """Rows for item ids another worker sent (new ones start seeded); `-1` where refused."""
        admitted = self.rows.items.admit(items, self.clock)
        self._apply(BatchRows(_EMPTY, _EMPTY, _EMPTY, admitted.reused, admitted.evicted, {}))
        rows = torch.from_numpy(admitted.rows[admitted.rows >= 0]).to(self.device)
        self.index.refresh(self.learner.item_vectors(), rows)  # the index covers every row
        return admitted.rows

    def admit_users(self, users: Sequence[str]) -> np.ndarray:
        """Rows for user ids handed over by a partition's previous owner; `-1` where refused."""
        admitted = self.rows.users.admit(users, self.clock)
        self._apply(BatchRows(_EMPTY, _EMPTY, admitted.reused, _EMPTY, _EMPTY, {}))
        return admitted.rows

    def _advance_clock(self, event_ts: np.ndarray, watermark: float = math.inf) -> float:
        """The batch clock: the newest event time, never backwards.

        Never past the wall clock, nor past `watermark`.
        """
        if event_ts.size:
            newest = min(float(event_ts.max()), time.time())
            self.newest_ts = max(self.newest_ts, newest)
            self.clock = max(self.clock, min(newest, watermark))
        return self.clock

    def _apply(self, admitted: BatchRows) -> torch.Tensor:
        """Size the tables to the maps, reset reused rows and track free item rows."""
        learner, device = self.learner, self.device
        learner.sync_rows()  # the seen history's rows too
        reused_users = torch.from_numpy(admitted.reused_users).to(device)
        reused_items = torch.from_numpy(admitted.reused_items).to(device)
        learner.reset_rows(reused_users, reused_items)  # and their seen history
        self.stages.reset_users(admitted.reused_users)
        self.stages.reset_items(reused_items)
        freed = torch.from_numpy(admitted.freed_items).to(device)
        self._sync_free_items(freed, reused_items)
        return reused_items

    def _sync_free_items(self, freed: torch.Tensor, reused: torch.Tensor | None = None) -> None:
        """Keep a device mask of free item rows: O(changes), grown by the one rule (growth.py)."""
        extent = self.learner.items.extent
        if self._free_items.shape[0] < extent:
            capacity = grown_capacity(
                self._free_items.shape[0], extent, self.rows.items.limits.max_rows
            )
            grown = torch.zeros(capacity, dtype=torch.bool, device=self.device)
            grown[: self._free_items.shape[0]] = self._free_items
            self._free_items = grown
        if freed.numel():
            self._free_items[freed] = True
        if reused is not None and reused.numel():
            self._free_items[reused] = False

    def unavailable_items(self) -> torch.Tensor | None:
        """Rows no list may name: free rows and hidden items', as a bool mask (None: none).

        Hidden ids are looked up afresh each time (a dict lookup per hidden id): rows are
        evicted and reused under the catalogue, and a stale cache would hide the wrong item.
        """
        items = self.learner.items
        hidden = self.catalogue.hidden_rows(items) if len(self.catalogue) else None
        if hidden is not None and hidden.size:
            mask = self._free_items[: items.extent].clone()
            mask[torch.from_numpy(hidden).to(self.device)] = True
            return mask
        if items.free_count == 0:
            return None
        return self._free_items[: items.extent]

    def known_user_rows(self, users: Sequence[str]) -> np.ndarray:
        """Rows of `users`, `-1` for ids the model has no row for; creates nothing."""
        return self.learner.users.lookup(users)

    def rank(self, user_rows: torch.Tensor, threads: int = 1) -> Ranked:
        """Each user's best `top_k` item rows: candidates from every source, then the ranker.

        Seen items and items no list may name are left out. On a CPU, `threads` > 1
        ranks chunks of the users side by side, each on one torch thread.
        """
        user_rows = user_rows.to(self.device)
        rows, scores = self.stages.rank(user_rows, self.top_k, self.unavailable_items(), threads)
        last_ts = self.history.last_ts[user_rows]
        # rows, scores, event times and the sets held for users at rest come down as one copy
        held = self.stages.held()
        users, rows_h, scores_h, last_h, *held_h = self.transfers.download(
            user_rows, rows, scores, last_ts, *held
        )
        if held:
            self.stages.keep_resting(held_h)
        return Ranked(users, rows_h, scores_h, last_h)

    def _fit_ranker(self, users: Sequence[str], items: Sequence[str]) -> None:
        """Teach the ranker the batch's clicks before they are learned (test, then train).

        Each click's candidates come from the model as it stands, its item unseen:
        exactly the list its user would have been shown. They are built now and taught
        by `train_ranker`.
        """
        user_rows = self.known_user_rows(users)
        item_rows = self.learner.items.lookup(items)
        known = (user_rows >= 0) & (item_rows >= 0)
        if not known.any():
            return
        clicked = torch.from_numpy(item_rows[known]).to(self.device)
        self.stages.study(user_rows[known], clicked)

    def train_ranker(self) -> None:
        """Teach the ranker the clicks `learn` studied (else the next `learn` does).

        The worker calls it once a batch's lists are on their way to Redis: the step
        then runs beside the write instead of before the rank.
        """
        self.stages.train()

    def lists(self, ranked: Ranked) -> RankedLists:
        """The ranked rows named for publishing: user ids, their newest event time, item ids.

        The bytes of the contract are the wire side's (`stream.payload`).
        """
        last_ts = ranked.last_ts
        if last_ts is None:
            rows = torch.from_numpy(ranked.user_rows).to(self.device)
            last_ts = self.history.last_ts[rows].cpu().numpy()
        return RankedLists(
            self.learner.users.ids_of(ranked.user_rows).tolist(),
            ranked.item_rows,
            ranked.scores,
            last_ts,
            self.learner.items.ids_of,
        )

    def rank_cold_start(self) -> Ranked:
        """The cold-start list: a query with no row and no history, so item biases alone.

        Its one "user row" is `-1`. It is what new, evicted and expired users are shown.
        """
        if not self.learner.items.extent:  # nothing learned yet: no items to list
            empty = np.full((1, self.top_k), -1)
            return Ranked(np.full(1, -1), empty, np.full((1, self.top_k), -np.inf))
        query = self.learner.cold_vector()
        nothing_seen = torch.full((1, 1), -1, dtype=torch.int64, device=self.device)
        top = top_k_excluding(
            self.index,
            query,
            nothing_seen,
            torch.zeros(1, dtype=torch.int64, device=self.device),
            self.top_k,
            unavailable=self.unavailable_items(),
        )
        return Ranked(np.full(1, -1), top.rows.cpu().numpy(), top.scores.cpu().numpy())

    def cold_start(self) -> Recommendation:
        """The cold-start list as published, stamped with the newest event folded in."""
        ranked = self.rank_cold_start()
        keep = ranked.item_rows[0] >= 0
        items = self.learner.items.ids_of(ranked.item_rows[0][keep]).tolist()
        return Recommendation("", items, ranked.scores[0][keep].tolist(), self.newest_ts)

    def warm_start(self, vectors: Vectors, seen_at: float) -> Installed:
        """Install an offline model's vectors (`models.warm_start`) into every part that holds ids.

        The installed rows count as seen at `seen_at`, so an id TTL does not expire them at
        the first batch; the history and the index take them in at once.
        """
        learner = self.learner
        installed = install_vectors(learner, vectors, seen_at=seen_at)
        self.rows.items.admit(vectors.item_ids, seen_at)
        if vectors.user_ids:
            self.rows.users.admit(vectors.user_ids, seen_at)
        every_row = torch.arange(learner.items.extent, device=self.device)
        self.index.refresh(learner.item_vectors(), every_row)
        return installed

    def refresh_idle(self) -> None:
        """No new events: still let the index swap in a finished background build."""
        if self.learner.items.extent:
            none = torch.empty(0, dtype=torch.int64, device=self.device)
            self.index.refresh(self.learner.item_vectors(), none)
