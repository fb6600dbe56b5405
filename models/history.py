"""Each user's most recent distinct items, kept on the device: one ring, read by every part.

Lists exclude what it holds, the learner's query sums the context vectors of its
newest slots, the candidate sources start from them, and `recstream inspect`
shows them. One ring per user, written once per batch by the learner.
"""

from __future__ import annotations

import torch

from models.growth import grown_capacity
from models.segments import PAIR_SPAN, host_max, masked_put, ranks_in_runs, run_bounds
from models.state import StateDict, host_copy, rows_of, tensor

# Item rows stay far below 2**31: int32 slots halve what a user row costs (the history is
# nearly all of it), and every read hands out int64, which torch's gathers and scatters take.
SLOT = torch.int32


class SeenHistory:
    """A ring buffer of each user row's last `length` clicks, plus event times.

    Bounded on purpose: exclusion needs the items a user would notice seeing
    again, and a fixed width keeps the search-time mask one dense gather.
    A re-click takes a fresh slot (so a just-clicked item is always held);
    repeats within one batch take one. `-1` marks an empty slot. Slots are
    stored as int32 and read as int64.
    """

    def __init__(self, length: int, device: torch.device) -> None:
        """Create an empty history of `length` slots per user."""
        if length < 1:
            raise ValueError(f"history length must be >= 1, got {length}")
        self.length = length
        self.device = device
        self.max_users: int | None = None  # growth never allocates past this (a row cap)
        self.items = torch.full((0, length), -1, dtype=SLOT, device=device)
        self.written = torch.zeros(0, dtype=torch.int64, device=device)
        self.last_ts = torch.zeros(0, dtype=torch.float64, device=device)

    @property
    def capacity(self) -> int:
        """User rows allocated."""
        return int(self.items.shape[0])

    def ensure_users(self, users: int) -> None:
        """Make user rows `0..users-1` exist."""
        if users <= self.capacity:
            return
        held = self.capacity
        capacity = grown_capacity(held, users, self.max_users)
        # Each byte written once (the held rows copied, only the new ones filled): this
        # copy is the one slow batch a growing user table costs.
        items = torch.empty((capacity, self.length), dtype=SLOT, device=self.device)
        items[:held] = self.items
        items[held:] = -1
        written = torch.zeros(capacity, dtype=torch.int64, device=self.device)
        written[:held] = self.written
        last_ts = torch.zeros(capacity, dtype=torch.float64, device=self.device)
        last_ts[:held] = self.last_ts
        self.items, self.written, self.last_ts = items, written, last_ts

    def state_dict(self, rows: int | None = None) -> StateDict:
        """Copies of the buffers of the first `rows` user rows (all allocated by default).

        The history does not know which rows its owner uses, so the owner says.
        """
        used = slice(0, self.capacity if rows is None else min(rows, self.capacity))
        return {
            "items": host_copy(self.items[used]),
            "written": host_copy(self.written[used]),
            "last_ts": host_copy(self.last_ts[used]),
        }

    def load_state_dict(self, state: StateDict) -> None:
        """Hold the rows of `state_dict()` output (copied in) of a history as long as this one."""
        rows = rows_of(state, "items")
        items = tensor(state, "items", (rows, self.length), SLOT)  # int64 in older checkpoints
        written = tensor(state, "written", (rows,), torch.int64)
        last_ts = tensor(state, "last_ts", (rows,), torch.float64)
        capacity = grown_capacity(0, rows, self.max_users)
        self.items = torch.full((capacity, self.length), -1, dtype=SLOT, device=self.device)
        self.written = torch.zeros(capacity, dtype=torch.int64, device=self.device)
        self.last_ts = torch.zeros(capacity, dtype=torch.float64, device=self.device)
        self.items[:rows] = items.to(self.device)
        self.written[:rows] = written.to(self.device)
        self.last_ts[:rows] = last_ts.to(self.device)

    def export(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Copies of `users`' slots, click counts and newest event times (a hand-over's state)."""
        users = users.to(self.device)
        return self.items[users].long(), self.written[users], self.last_ts[users]

    def install(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        written: torch.Tensor,
        last_ts: torch.Tensor | None = None,
    ) -> None:
        """Give existing `users` these slots and counts (and event times): a hand-over's end.

        `items` is `length` wide, `-1` where a slot is empty (or its item has no row here).
        """
        users = users.to(self.device)
        self.items[users] = items.to(self.device, SLOT)
        self.written[users] = written.to(self.device, torch.int64)
        if last_ts is not None:
            self.last_ts[users] = last_ts.to(self.device, torch.float64)

    def reset(self, users: torch.Tensor) -> None:
        """Forget `users` (rows handed to new users): no items, no clicks, no event time."""
        if users.numel() == 0:
            return
        users = users.to(self.device)
        self.ensure_users(int(users.max()) + 1)
        self.items[users] = -1
        self.written[users] = 0
        self.last_ts[users] = 0.0

    def add(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        ts: torch.Tensor,
        *,
        rows_ready: bool = False,
    ) -> None:
        """Fold a batch of (user, item, time) clicks in, vectorised over the batch.

        Each distinct (user, item) pair is written once, at its last click in
        the batch; a user with more pairs in one batch than slots keeps the
        newest. Nothing here reads the buffers, so the cost is O(batch), and no
        shape depends on the data, so a device never waits for the host.

        `rows_ready`: the caller
        made every user row exist (`ensure_users`), so the largest is not read
        back (on a device, that read is a sync).
        """
        n = users.numel()
        if n == 0:
            return
        if not rows_ready:
            self.ensure_users(host_max(users) + 1)
        self.last_ts.scatter_reduce_(0, users, ts.to(torch.float64), reduce="amax")
        # A click is live when it is its (user, item) pair's last in the batch.
        ordered, order = torch.sort(users * PAIR_SPAN + items, stable=True)
        _, last, _ = run_bounds(ordered)
        live = torch.empty(n, dtype=torch.bool, device=users.device)
        live[order] = last == torch.arange(n, device=users.device)
        # Rank of each live click among its user's (a stable sort keeps time order): the
        # newest `length` of them take the next ring slots.
        by_user, order = torch.sort(users, stable=True)
        live = live[order]
        rank, total = ranks_in_runs(by_user, live)
        write = live & (rank >= total - self.length)
        slots = (self.written[by_user] + rank) % self.length
        masked_put(self.items.view(-1), by_user * self.length + slots, items[order], write)
        self.written.index_add_(0, by_user, live.long())

    def slots(self, users: torch.Tensor) -> torch.Tensor:
        """Every slot of each user's buffer (`-1` where empty): `seen` at full width, no sync."""
        return self.items[users].long()

    def seen(self, users: torch.Tensor) -> torch.Tensor:
        """Item rows each user has seen, `-1` padded, as wide as the fullest buffer among them.

        Slots fill from 0 before the ring wraps, so columns past the largest
        count hold nothing: leaving them out keeps light users' batches cheap.
        """
        if users.numel() == 0:
            return self.items[:0].long()
        width = max(1, int(self.seen_counts(users).max()))
        return self.items[users, :width].long()

    def latest(self, users: torch.Tensor, n: int) -> torch.Tensor:
        """Each user's last `n` clicks, newest first, `-1` where fewer were kept."""
        back = torch.arange(n, device=self.device)
        written = self.written[users].unsqueeze(1)
        slots = (written - 1 - back) % self.length
        rows = self.items[users.unsqueeze(1), slots].long()
        return rows.masked_fill(back >= written.clamp(max=self.length), -1)

    def seen_counts(self, users: torch.Tensor) -> torch.Tensor:
        """How many slots of each user's buffer hold an item."""
        return self.written[users].clamp(max=self.length)
