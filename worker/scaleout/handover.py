"""A set of users' state, out of one model and into another (a partition changing owner).

A user's state is their row (vector and row-wise Adagrad sums), the seen
history (what their lists exclude; its newest slots are the query's context),
its newest event time, and the row's last sight (for eviction). Item
references travel as item *ids*: item rows are local to each worker. The ring
is cut to its filled slots (they fill from slot 0 before it wraps), so a light
user costs a few bytes, not `length` slots.

No I/O: `export_users` gives arrays and lists, `import_users` takes them back;
the worker encodes them (`worker.scaleout.codec`) and sends them on the
partition-keyed state topic (`RECSTREAM_KAFKA_STATE_TOPIC`). Each part is read
and written through its own methods (`gather`/`put`, `export`/`install`, `saw`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from models.learner import OnlineLearner
from models.rows import RowKeeper

ItemRows = Callable[[Sequence[str]], npt.NDArray[np.int64]]


@dataclass(frozen=True)
class UserRows:
    """The state of `len(ids)` users, row-aligned."""

    ids: list[str]
    weight: npt.NDArray[np.float32]  # (n, dim + 1)
    grad_sq: npt.NDArray[np.float32]  # (n, 2)
    seen: list[list[str | None]]  # the seen history's filled slots, in slot order
    seen_written: npt.NDArray[np.int64]
    last_ts: npt.NDArray[np.float64]  # newest event time folded in
    last_seen: npt.NDArray[np.float64]  # the row's last sight (batch clock)


def _ring_ids(
    items: torch.Tensor, written: torch.Tensor, learner: OnlineLearner
) -> list[list[str | None]]:
    """Each ring's filled slots as item ids (None for a slot whose item row went away)."""
    filled = written.clamp(max=items.shape[1]).cpu().numpy()
    rows = items.cpu().numpy()
    width = int(filled.max(initial=0))
    ids = learner.items.ids_of(np.clip(rows[:, :width], 0, None))
    ids[rows[:, :width] < 0] = None
    return [ids[n, : filled[n]].tolist() for n in range(rows.shape[0])]


def export_users(
    learner: OnlineLearner, keeper: RowKeeper, rows: npt.NDArray[np.int64]
) -> UserRows:
    """The state of the users at `rows` (live rows of `learner.users`)."""
    index = torch.from_numpy(rows).to(learner.device)
    weight, grad_sq = learner.user_table.gather(index)
    seen, seen_written, last_ts = learner.history.export(index)
    return UserRows(
        ids=[str(u) for u in learner.users.ids_of(rows)],
        weight=weight.cpu().numpy(),
        grad_sq=grad_sq.cpu().numpy(),
        seen=_ring_ids(seen, seen_written, learner),
        seen_written=seen_written.cpu().numpy().astype(np.int64),
        last_ts=last_ts.cpu().numpy().astype(np.float64),
        last_seen=keeper.last_seen[rows].copy(),
    )


def _ring_rows(
    rings: list[list[str | None]], length: int, row_of: dict[str, int]
) -> npt.NDArray[np.int64]:
    out = np.full((len(rings), length), -1, dtype=np.int64)
    for n, ring in enumerate(rings):
        for slot, item in enumerate(ring[:length]):
            if item is not None:
                out[n, slot] = row_of.get(item, -1)
    return out


def import_users(
    learner: OnlineLearner,
    keeper: RowKeeper,
    state: UserRows,
    user_rows: npt.NDArray[np.int64],
    item_rows: ItemRows,
) -> int:
    """Write `state` into the (already admitted) `user_rows`, `-1`: skipped; returns users set.

    `item_rows` maps item ids to local rows (admitting unknown items); a ring slot
    whose item gets no row is left empty.
    """
    keep = np.flatnonzero(user_rows >= 0)
    if keep.size == 0:
        return 0
    rows = user_rows[keep]
    index = torch.from_numpy(rows).to(learner.device)
    wanted = sorted({i for n in keep for i in state.seen[n] if i})
    row_of = dict(zip(wanted, item_rows(wanted).tolist(), strict=True)) if wanted else {}
    learner.sync_rows()  # the seen history's rows too
    history = learner.history
    weight, grad_sq = torch.from_numpy(state.weight[keep]), torch.from_numpy(state.grad_sq[keep])
    learner.user_table.put(index, weight, grad_sq)
    seen = torch.from_numpy(_ring_rows([state.seen[n] for n in keep], history.length, row_of))
    written, last_ts = state.seen_written[keep], state.last_ts[keep]
    history.install(index, seen, torch.from_numpy(written), torch.from_numpy(last_ts))
    keeper.saw(rows, state.last_seen[keep])
    return int(keep.size)


def drop_users(learner: OnlineLearner, rows: npt.NDArray[np.int64]) -> None:
    """Forget the users at `rows` (their partition moved away); the rows are reused later."""
    live = rows[learner.users.live_mask()[rows]] if rows.size else rows
    learner.users.release(live)
