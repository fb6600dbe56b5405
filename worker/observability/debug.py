"""One user's model state as JSON: for `recstream inspect` and the opt-in debug endpoint.

Read-only. From a running worker it is read without stopping the loop, so a
reply may mix two batches (a row can even change hands between the lookup and
the read); that is fine for a person looking, never for a program deciding.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from models.errors import ModelError
from models.learner import OnlineLearner

RECENT = 10  # recent clicks shown by default


def describe_user(learner: OnlineLearner, user: str, recent: int = RECENT) -> dict[str, Any] | None:
    """The user's recent clicks (newest first) and seen history, or None without a row.

    Both come from the one ring the learner reads and lists exclude (`learner.history`).
    """
    try:
        return _describe(learner, user, recent)
    except ModelError:  # the row was freed while we read it (a live worker): as if unknown
        return None


def _describe(learner: OnlineLearner, user: str, recent: int) -> dict[str, Any] | None:
    if user not in learner.users:
        return None
    history = learner.history
    row = learner.users.row(user)
    items, written, last_ts = history.items, history.written, history.last_ts  # one snapshot
    if row >= items.shape[0]:  # a row assigned but not learned yet
        return {"user": user, "row": row, "clicks": 0, "last_event_ts": None, "recent": []}
    rows = torch.tensor([row], device=items.device)
    count = int(written[row])
    held = min(count, history.length)
    recent_rows = history.latest(rows, min(max(recent, 0), history.length))[0]
    seen_rows = items[row, :held]
    ts = float(last_ts[row])
    return {
        "user": user,
        "row": row,
        "clicks": count,  # distinct-per-batch clicks folded into the history
        "last_event_ts": ts if math.isfinite(ts) and ts > 0 else None,
        "recent": _ids(learner, recent_rows),
        "seen": sorted(_ids(learner, seen_rows)),
        "seen_capacity": history.length,
    }


def _ids(learner: OnlineLearner, rows: torch.Tensor) -> list[str]:
    """Item ids of `rows` in order, leaving out empty slots and freed rows."""
    kept = rows[rows >= 0].cpu().numpy()
    return [str(i) for i in learner.items.ids_of(kept) if i is not None]
