"""The model side of a batch, with no I/O: map ids, learn, keep the index fresh, rank.

The worker loop and the offline evaluation both drive this one class, so what
`recstream eval` measures is what `recstream run` publishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import structlog
import torch

from index import ItemIndex, top_k_excluding
from models import ModelFitError, OnlineLearner, SeenHistory
from stream import Recommendation

log = structlog.get_logger("recstream.worker")


@dataclass(frozen=True)
class Learned:
    """What learning one batch did."""

    loss: float  # NaN when the step was refused (non-finite), the lists still go out
    touched: torch.Tensor  # distinct user rows of the batch, on the learner's device


@dataclass(frozen=True)
class Ranked:
    """Top-k item rows per user row, on the CPU; `-1` pads lists shorter than k."""

    user_rows: np.ndarray
    item_rows: np.ndarray
    scores: np.ndarray


class Engine:
    """Learner, seen history and item index, advanced together one micro-batch at a time."""

    def __init__(
        self, learner: OnlineLearner, history: SeenHistory, index: ItemIndex, top_k: int
    ) -> None:
        """Tie the parts together; the caller owns their lifetimes."""
        self.learner = learner
        self.history = history
        self.index = index
        self.top_k = top_k

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
    ) -> Learned:
        """Fold a batch of clicks into the model, the seen history and the index."""
        learner, device = self.learner, self.device
        user_rows = torch.from_numpy(learner.users.rows_for(users)).to(device)
        item_rows = torch.from_numpy(learner.items.rows_for(items)).to(device)
        try:
            weight = torch.from_numpy(weights).to(device, torch.float32)
            stats = learner.learn(user_rows, item_rows, weight)
            loss, changed = stats.loss, stats.item_rows
        except ModelFitError:
            # The step was not applied; the lists still go out from the model as it stands.
            log.exception("batch_not_learned", events=len(users))
            loss, changed = float("nan"), item_rows.new_empty(0)
        self.history.add(user_rows, item_rows, torch.from_numpy(event_ts).to(device))
        self.index.refresh(learner.item_vectors(), changed)
        return Learned(loss, torch.unique(user_rows))

    def known_user_rows(self, users: Sequence[str]) -> np.ndarray:
        """Rows of `users`, `-1` for ids the model has no row for; creates nothing."""
        row_of = self.learner.users
        return np.fromiter(
            (row_of.row(u) if u in row_of else -1 for u in users), dtype=np.int64, count=len(users)
        )

    def rank(self, user_rows: torch.Tensor) -> Ranked:
        """Each user's best `top_k` item rows, leaving out what the user has seen."""
        user_rows = user_rows.to(self.device)
        top = top_k_excluding(
            self.index,
            self.learner.user_vectors(user_rows),
            self.history.seen(user_rows),
            self.history.seen_counts(user_rows),
            self.top_k,
        )
        return Ranked(user_rows.cpu().numpy(), top.rows.cpu().numpy(), top.scores.cpu().numpy())

    def recommendations(self, ranked: Ranked) -> list[Recommendation]:
        """Ranked rows turned into the published lists: item ids, scores, newest event time."""
        learner = self.learner
        users = learner.users.ids_of(ranked.user_rows)
        last_ts = self.history.last_ts[torch.from_numpy(ranked.user_rows).to(self.device)]
        last_ts_list = last_ts.cpu().numpy().tolist()
        rows, scores = ranked.item_rows, ranked.scores
        valid = rows >= 0
        full = valid.all(axis=1)
        item_ids = learner.items.ids_of(np.where(valid, rows, 0))
        recs = []
        for n, user in enumerate(users):
            if full[n]:
                items, row_scores = item_ids[n].tolist(), scores[n].tolist()
            else:
                keep = valid[n]
                items, row_scores = item_ids[n][keep].tolist(), scores[n][keep].tolist()
            recs.append(Recommendation(user, items, row_scores, last_ts_list[n]))
        return recs

    def refresh_idle(self) -> None:
        """No new events: still let the index swap in a finished background build."""
        if len(self.learner.items):
            none = torch.empty(0, dtype=torch.int64, device=self.device)
            self.index.refresh(self.learner.item_vectors(), none)
