"""Lists for users between sessions: who has just fallen idle, and what their list mixes in.

The ranker learns from next clicks, most of them mid-session, where the last clicks'
neighbours lead; a list read after a pause is better served by what is popular
(docs/accuracy.md, "Between sessions"). So a user idle `idle_after_s` or more is
scored `log((1 - s) p_ranker + s p_popular)`, and is ranked once more when the batch
clock passes their pause, so the list stored between sessions is that one. Which `s`
serves depends on the stream (ml-100k wants much more popularity than ml-latest-small),
so by default it is learned from the clicks of users who come back
(`worker.engine.two_stage`, `models.hit_share`).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch

from models.idmap import IdMap
from worker.engine.mix import mix
from worker.engine.stage_config import StageConfig

SCANS = 60  # scans for users falling idle per idle time (an hour: once a minute)
MIN_RESTING = 256  # users a batch may re-rank as resting, at least (more if it touched more)
# Under a backlog, the share of a batch's touched users it may re-rank as resting on top: the
# stream's own lists come first, and those due wait (oldest first) for a batch with room.
# On the outside load, where every click ends a session, re-ranks at rest matched the touched
# one for one and cost 5,700-9,900 of 14,000-18,000 users ranked per backlogged batch.
BACKLOG_RESTING_SHARE = 0.25
_EVERY_ROW = np.iinfo(np.int64).max  # a cursor row past every row: its sight was taken whole


def popular_log_p(popular: torch.Tensor, valid: torch.Tensor, config: StageConfig) -> torch.Tensor:
    """`p_popular` over each user's candidates: a softmax of `idle_sharpness` x log popularity."""
    return torch.log_softmax((popular * config.idle_sharpness).masked_fill(~valid, -math.inf), 1)


def mix_popular(
    scores: torch.Tensor,
    popular: torch.Tensor,
    valid: torch.Tensor,
    idle: torch.Tensor,
    config: StageConfig,
    share: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Idle users' log-scores mixed with `popular_log_p` at `share`; others as given.

    `scores` are log-probabilities over each user's candidates, `popular` the
    candidates' log popularity, `idle` each user's seconds since their last click.
    `share` defaults to `config.idle_popular_share` (the start of a learned one).
    """
    if config.idle_after_s <= 0 or config.idle_popular_share <= 0:
        return scores
    share = config.idle_popular_share if share is None else share
    popular = popular_log_p(popular, valid, config)
    return torch.where(
        (idle >= config.idle_after_s).unsqueeze(1), mix(scores, popular, share), scores
    )


class RestingUsers:
    """Finds the user rows whose last sight has just become `idle_after_s` old, each once."""

    def __init__(self, config: StageConfig, clock: float) -> None:
        """Start at `clock`: users idle already (a restore) are not all due at once."""
        self.config = config
        self._from = clock - config.idle_after_s
        self._row = _EVERY_ROW  # rows of the sight `_from` up to this one were taken
        self._left = False  # the last scan found more than one batch may take

    def due(
        self,
        clock: float,
        last_seen: npt.NDArray[np.float64],
        ids: IdMap,
        touched: int,
        backlog: bool = False,
    ) -> npt.NDArray[np.int64]:
        """Rows last seen in `(previous scan, clock - idle_after_s]`, oldest first, bounded.

        Scanned (on the host) once per `1/SCANS` of the idle time, not every batch, and a
        batch takes at most as many as it touched (at least `MIN_RESTING`): after a quiet
        night a million users fall due at once, and are spread over batches rather than
        ranked in one. Under a `backlog` (more is waiting to be read) a batch takes at
        most `BACKLOG_RESTING_SHARE` of that: a list between sessions is read after a
        pause, so it can wait for the stream's own lists; a user who clicks again
        before their turn is no longer due.
        """
        config = self.config
        none = np.empty(0, dtype=np.int64)
        if config.idle_after_s <= 0 or config.idle_popular_share <= 0:
            return none
        upto = clock - config.idle_after_s
        if upto < self._from + config.idle_after_s / SCANS and not self._left:
            return none
        live = ids.live_mask()[: last_seen.size]
        after = last_seen > self._from
        tied = np.flatnonzero(last_seen == self._from)  # the cursor's sight: past its row
        after[tied[tied > self._row]] = True
        due = np.flatnonzero(after & (last_seen <= upto) & live)
        most = max(MIN_RESTING, int(touched * BACKLOG_RESTING_SHARE) if backlog else touched)
        self._left = due.size > most
        if self._left:
            # the `most` oldest by (sight, row): a batch's users share one sight, so the
            # cursor also holds the last row taken in the sight it stops in
            seen = last_seen[due]
            oldest = np.partition(seen, most - 1)[most - 1]
            before = due[seen < oldest]
            due = np.concatenate([before, due[seen == oldest][: most - before.size]])
            self._from, self._row = float(oldest), int(due[-1])
        else:
            self._from, self._row = upto, _EVERY_ROW
        return due

    def lag_s(self, clock: float) -> float:
        """How long the oldest user still due has waited past their pause (0: none waits)."""
        if not self._left:
            return 0.0
        return max(0.0, clock - self.config.idle_after_s - self._from)
