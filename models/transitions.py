"""Item-to-item transitions: what users clicked next, counted exactly as it happens.

A factor model learns "after j comes i" slowly, one small step per click; a
count knows it after the first pair. Each item row keeps a ring of its last
`slots` successors (items the same user clicked within `window` clicks after
it, each weighted `decay ** (distance - 1)`), so the table is bounded per item,
follows drift (old transitions are overwritten), and a user's transition score
for item `i` is the weighted share of `i` among the successors of their last
clicks (an online estimate of `P(next = i | recent clicks)`, scaled up where
the successors are many, so evidence counts), read where the successor
candidates are proposed (the worker's two stages).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import torch

from models.covisit import CoVisitation
from models.growth import grown_capacity
from models.segments import masked_put, ranks_in_runs, run_bounds
from models.state import StateDict, host_copy, part, prefixed, rows_of, tensor

# Called with a learned step's (before, after, weight) pairs, padded (`before < 0`: no pair).
PairSink: TypeAlias = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]


class ItemTransitions:
    """Per item row, a ring of its most recent successors and their weights."""

    def __init__(self, slots: int, window: int, decay: float, device: torch.device) -> None:
        """Create an empty table: `slots` successors per item, pairs up to `window` apart."""
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if not 0 < decay <= 1:
            raise ValueError(f"decay must be in (0, 1], got {decay}")
        self.slots = slots
        self.window = window
        self.decay = decay
        self.device = device
        self.max_rows: int | None = None  # growth never allocates past this (a row cap)
        # int32 rows: half the memory, and item rows stay far below 2**31
        self.successors = torch.full((0, slots), -1, dtype=torch.int32, device=device)
        self.weights = torch.zeros(0, slots, device=device)
        self.written = torch.zeros(0, dtype=torch.int64, device=device)
        self.resets = 0  # resets and restores: rings changed without their `written` moving

    @property
    def capacity(self) -> int:
        """Item rows allocated."""
        return int(self.successors.shape[0])

    def ensure_rows(self, rows: int) -> None:
        """Make item rows `0..rows-1` exist, with no successors."""
        if rows <= self.capacity:
            return
        capacity = grown_capacity(self.capacity, rows, self.max_rows)
        successors = torch.full((capacity, self.slots), -1, dtype=torch.int32, device=self.device)
        successors[: self.capacity] = self.successors
        weights = torch.zeros(capacity, self.slots, device=self.device)
        weights[: self.capacity] = self.weights
        written = torch.zeros(capacity, dtype=torch.int64, device=self.device)
        written[: self.capacity] = self.written
        self.successors, self.weights, self.written = successors, weights, written

    def reset(self, rows: torch.Tensor) -> None:
        """Forget `rows` (handed to new items): their successors, and them as a successor."""
        if rows.numel() == 0:
            return
        rows = rows.to(self.device)
        self.ensure_rows(int(rows.max()) + 1)
        self.successors[rows] = -1
        self.weights[rows] = 0.0
        self.written[rows] = 0
        self.resets += 1
        stale = torch.isin(self.successors, rows)
        self.successors.masked_fill_(stale, -1)
        self.weights.masked_fill_(stale, 0.0)

    def state_dict(self, rows: int | None = None) -> StateDict:
        """Copies of the rings of the first `rows` item rows (all allocated by default)."""
        used = slice(0, self.capacity if rows is None else min(rows, self.capacity))
        return {
            "successors": host_copy(self.successors[used]),
            "weights": host_copy(self.weights[used]),
            "written": host_copy(self.written[used]),
        }

    def load_state_dict(self, state: StateDict) -> None:
        """Hold the rows of `state_dict()` output (copied in) of a table with as many slots."""
        rows = rows_of(state, "successors")
        successors = tensor(state, "successors", (rows, self.slots), torch.int32)
        weights = tensor(state, "weights", (rows, self.slots), torch.float32)
        written = tensor(state, "written", (rows,), torch.int64)
        capacity = grown_capacity(0, rows, self.max_rows)
        device = self.device
        self.successors = torch.full((capacity, self.slots), -1, dtype=torch.int32, device=device)
        self.weights = torch.zeros(capacity, self.slots, device=device)
        self.written = torch.zeros(capacity, dtype=torch.int64, device=device)
        self.successors[:rows] = successors.to(device)
        self.weights[:rows] = weights.to(device)
        self.written[:rows] = written.to(device)
        self.resets += 1

    def rings(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of the rings of `rows` (held rows): successor rows (`-1`: empty) and weights."""
        rows = rows.to(self.device)
        return self.successors[rows], self.weights[rows]

    def add(
        self,
        before: torch.Tensor,
        after: torch.Tensor,
        weight: torch.Tensor,
        *,
        rows_ready: bool = False,
    ) -> None:
        """Append each pair's `after` (with `weight`) to the ring of its `before` item row.

        A pair whose `before` is negative is padding and is skipped. No shape depends
        on the data (no sync on a device); `rows_ready`: the caller made every row
        exist (`ensure_rows`), so the largest is not read back.
        """
        if before.numel() == 0:
            return
        held = before >= 0
        if not rows_ready:
            if before.device.type == "cpu":
                used = before.numpy() >= 0
                if not used.any():
                    return
                top = max(before.numpy()[used].max(), after.numpy()[used].max())
            else:
                top = int(torch.where(held, torch.maximum(before, after), -1).max())
            self.ensure_rows(int(top) + 1)
        # pairs arrive in time order, so a stable sort keeps each ring's order of arrival
        ordered, order = torch.sort(torch.where(held, before, -1), stable=True)
        held = held[order]
        rank, total = ranks_in_runs(ordered, held)
        write = held & (rank >= total - self.slots)
        rows = ordered.clamp(min=0)
        slot = (self.written[rows] + rank) % self.slots
        cell = rows * self.slots + slot
        masked_put(self.successors.view(-1), cell, after[order].to(torch.int32), write)
        masked_put(self.weights.view(-1), cell, weight[order], write)
        self.written.index_add_(0, rows, held.long())


class TransitionTerm:
    """The item-item counts a batch of clicks feeds: ordered successor rings and co-visits.

    Both are fed the same `(before, after, weight)` pairs (a click and the user's
    clicks just before it), so scale-out shares one stream of pairs for both.
    """

    def __init__(self, table: ItemTransitions, covisit: CoVisitation) -> None:
        """The successor rings and the unordered co-visit table."""
        self.table = table
        self.covisit = covisit
        self._sinks: list[PairSink] = []

    def watch(self, sink: PairSink) -> None:
        """Hand every learned step's pairs to `sink` too (scale-out sends them to the others)."""
        self._sinks.append(sink)

    def ensure_rows(self, rows: int) -> None:
        """Make item rows `0..rows-1` exist in both tables."""
        self.table.ensure_rows(rows)
        self.covisit.ensure_rows(rows)

    def cap_rows(self, max_rows: int) -> None:
        """Never grow either table past `max_rows` item rows."""
        self.table.max_rows = max_rows
        self.covisit.max_rows = max_rows

    def reset(self, rows: torch.Tensor) -> None:
        """Forget `rows` (handed to new items) in both tables."""
        self.table.reset(rows)
        self.covisit.reset(rows)

    def add(
        self,
        before: torch.Tensor,
        after: torch.Tensor,
        weight: torch.Tensor,
        *,
        rows_ready: bool = False,
    ) -> None:
        """Fold pairs into both tables (this worker's or another's); `before < 0` is padding."""
        self.table.add(before, after, weight, rows_ready=rows_ready)
        self.covisit.add(before, after, weight, rows_ready=rows_ready)

    def learn(self, before: torch.Tensor, after: torch.Tensor, weight: torch.Tensor) -> None:
        """Fold a learned step's own pairs in (rows ready), then hand them to the watchers."""
        self.add(before, after, weight, rows_ready=True)
        for sink in self._sinks:
            sink(before, after, weight)

    def state_dict(self, rows: int | None = None) -> StateDict:
        """Both tables' state (their first `rows` item rows), by prefix."""
        return prefixed("table", self.table.state_dict(rows)) | prefixed(
            "covisit", self.covisit.state_dict(rows)
        )

    def load_state_dict(self, state: StateDict) -> None:
        """Restore `state_dict()` output; a checkpoint from before co-visits starts them empty."""
        self.table.load_state_dict(part(state, "table"))
        covisit = part(state, "covisit")
        if covisit:
            self.covisit.load_state_dict(covisit)

    def fold(
        self, users: torch.Tensor, items: torch.Tensor, weights: torch.Tensor, latest: torch.Tensor
    ) -> None:
        """Pair each click with the user's clicks just before it, in this batch or earlier.

        `latest` is each event's user's last clicks before the batch, newest first.
        """
        self.add(*self.pairs(users, items, weights, latest))

    def pairs(
        self, users: torch.Tensor, items: torch.Tensor, weights: torch.Tensor, latest: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The `(before, after, weight)` pairs `fold` adds, for a caller that also keeps them.

        Scale-out sends each pair on (`watch`), so its pairs are computed once.
        The pairs are padded to `window` per event (no sync on a device): where no pair
        is, `before` is `-1` (and `weight` 0), which `ItemTransitions.add` skips.
        """
        window = self.table.window
        n = users.numel()
        device = users.device
        order = torch.argsort(users, stable=True)  # each user's events, in time order
        users, items, weights, latest = users[order], items[order], weights[order], latest[order]
        first, _, _ = run_bounds(users)
        rank = torch.arange(n, device=device) - first  # events of the user before this one
        back = torch.arange(1, window + 1, device=device).unsqueeze(0)  # distance
        in_batch = back <= rank.unsqueeze(1)
        earlier = items[(torch.arange(n, device=device).unsqueeze(1) - back).clamp(min=0)]
        from_ring = latest.gather(1, (back - rank.unsqueeze(1) - 1).clamp(min=0))
        before = torch.where(in_batch, earlier, from_ring)
        after = items.unsqueeze(1).expand(-1, window)
        weight = weights.unsqueeze(1) * self.table.decay ** (back - 1).float()
        pair = (before >= 0) & (before != after)
        # Padded, not compacted (no sync): a `-1` before marks no pair, which `add` skips.
        return (
            before.masked_fill(~pair, -1).reshape(-1),
            after.reshape(-1),
            weight.masked_fill(~pair, 0.0).reshape(-1),
        )
