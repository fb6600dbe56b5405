"""What is clicked now, at several time scales, and when each item was first and last clicked.

A list read the minute it is written wants what is trending now; a list read
hours later wants what stays popular. One decayed count cannot be both, so
this keeps one `PopularityPrior` per time scale (the longest may be infinite:
all-time counts), and the ranker learns how much each scale is worth. Item age
and time since the last click tell a new item from a stale one.

Each scale's leaders (its top rows and top mass) are kept up to date from the
clicks folded in, not found again over the whole catalogue per batch: between
rebases a click only raises its item's `L`, so the new leaders are among the
old ones and the rows clicked since. A rebase, a restore, or a reset of a row
that was a leader makes a scale find them again in full.
"""

from __future__ import annotations

import math

import torch

from models.growth import grown_capacity
from models.prior import FLOOR, PopularityPrior
from models.state import StateDict, host_copy, part, prefixed, rows_of, tensor

ALL_TIME = 1e15  # a time constant no stream reaches: the decay never bites (all-time counts)
_NEVER = -math.inf  # the first and last click time of an item never clicked
RELATIVE_FLOOR = -30.0  # log share of an item never clicked, relative to the top item
_PENDING_CAP = 1 << 16  # clicked rows held for the leaders; past this they are found in full


class Trending:
    """Decayed click mass per item at each scale, plus first and last click times."""

    def __init__(self, scales: tuple[float, ...], device: torch.device) -> None:
        """One prior per time constant in `scales` (`inf`: all-time), in the clock's unit."""
        if not scales or any(not s > 0 for s in scales):
            raise ValueError(f"scales must be non-empty and > 0, got {scales}")
        self.scales = tuple(scales)
        self.device = device
        self.priors = [PopularityPrior(min(s, ALL_TIME), device) for s in self.scales]
        self.first_seen = torch.empty(0, dtype=torch.float64, device=device)
        self.last_seen = torch.empty(0, dtype=torch.float64, device=device)
        self.max_rows: int | None = None
        self.clock = 0.0
        self.version = 0  # bumped by every change: callers cache what they derive per version
        self._peaks: list[torch.Tensor | None] = [None] * len(self.scales)  # top L per scale
        self._leaders: list[torch.Tensor | None] = [None] * len(self.scales)  # top rows
        self._pending: list[torch.Tensor] = []  # rows clicked since the leaders were found

    @property
    def capacity(self) -> int:
        """Item rows allocated."""
        return int(self.first_seen.shape[0])

    def ensure_rows(self, rows: int) -> None:
        """Make rows `0..rows-1` exist (fresh ones never clicked)."""
        for prior in self.priors:
            prior.max_rows = self.max_rows
            prior.ensure_rows(rows)
        if rows <= self.capacity:
            return
        held = self.capacity
        capacity = grown_capacity(held, rows, self.max_rows)
        for name in ("first_seen", "last_seen"):
            grown = torch.full((capacity,), _NEVER, dtype=torch.float64, device=self.device)
            grown[:held] = getattr(self, name)
            setattr(self, name, grown)

    def reset(self, rows: torch.Tensor) -> None:
        """Forget the clicks of `rows` (rows handed to new items)."""
        if rows.numel() == 0:
            return
        self.ensure_rows(int(rows.max()) + 1)
        self.version += 1
        for n, prior in enumerate(self.priors):
            before = prior.log_mass[rows]
            prior.reset(rows)
            # Rows at an item cap are reset every batch: a scale finds its leaders (or top
            # count) again in full only when a reset row was one of them.
            peak, leaders = self._peaks[n], self._leaders[n]
            if peak is not None and bool((before >= peak).any()):
                self._peaks[n] = None
            if leaders is not None and bool(torch.isin(leaders, rows).any()):
                self._leaders[n] = None
        self.first_seen[rows] = _NEVER
        self.last_seen[rows] = _NEVER

    def add(self, items: torch.Tensor, weights: torch.Tensor, now: float, rows: int) -> None:
        """Fold clicks on item rows at clock time `now` in, at every scale."""
        self.ensure_rows(rows)
        self.version += 1
        self.clock = max(self.clock, now)
        for n, prior in enumerate(self.priors):
            ref = prior.ref
            prior.add(items, weights, self.clock, rows)
            peak = self._peaks[n]
            if prior.ref != ref:  # a rebase moved every L (and the floor clamps some)
                self._peaks[n] = self._leaders[n] = None
            elif peak is not None and items.numel():
                self._peaks[n] = torch.maximum(peak, prior.log_mass[items].max())
        self._pending.append(items.reshape(-1))
        if sum(p.numel() for p in self._pending) > _PENDING_CAP:
            self._forget_leaders()
        if items.numel():
            stamp = torch.full(items.shape, self.clock, dtype=torch.float64, device=self.device)
            self.last_seen.index_put_((items,), stamp)
            fresh = torch.isinf(self.first_seen[items])
            self.first_seen.index_put_((items,), torch.where(fresh, stamp, self.first_seen[items]))

    def relative_log_mass(self, items: torch.Tensor, rows: int) -> torch.Tensor:
        """`[*items.shape, scales]`: item rows' log click mass minus the top item's (0 at the top).

        The top is kept up to date by `add`; it is found over the first `rows`
        rows only after a reset, a rebase or a restore.
        """
        self.ensure_rows(rows)
        for n, prior in enumerate(self.priors):
            if self._peaks[n] is None:
                mass = prior.log_mass[:rows]
                self._peaks[n] = mass.max() if rows else prior.log_mass.new_zeros(())
        top = torch.stack([peak for peak in self._peaks if peak is not None]).to(self.device)
        mass = torch.stack([p.log_mass[items] for p in self.priors], -1)
        relative = (mass - top).clamp(min=RELATIVE_FLOOR).float()
        return relative.masked_fill(mass <= FLOOR, RELATIVE_FLOOR)

    def top(self, rows: int, k: int) -> torch.Tensor:
        """`[scales, k]`: each scale's `k` most clicked item rows (`-1` past the clicked ones)."""
        self.ensure_rows(rows)
        k_here = min(k, rows)
        out = torch.full((len(self.priors), k), -1, dtype=torch.int64, device=self.device)
        pending = torch.cat(self._pending).to(self.device) if self._pending else None
        for n, prior in enumerate(self.priors):
            leaders = self._leaders[n]
            if leaders is None or leaders.numel() != k_here:
                values, picked = prior.log_mass[:rows].topk(k_here)
            elif pending is None:  # nothing clicked since: the same leaders
                picked = leaders
                values = prior.log_mass[picked]
            else:
                # The old leaders and the rows clicked since, each once (sorted, repeats
                # masked: no `unique`, so no shape that waits on a device).
                pool = torch.cat([leaders, pending]).sort().values
                repeat = torch.zeros_like(pool, dtype=torch.bool)
                repeat[1:] = pool[1:] == pool[:-1]
                mass = prior.log_mass[pool].masked_fill(repeat, -torch.inf)
                values, at = mass.topk(k_here)
                picked = pool[at]
            self._leaders[n] = picked
            out[n, :k_here] = picked.masked_fill(values <= FLOOR, -1)
        self._pending = []
        return out

    def _forget_leaders(self) -> None:
        """Have every scale find its leaders and top mass in full next time."""
        self._peaks = [None] * len(self.priors)
        self._leaders = [None] * len(self.priors)
        self._pending = []

    def ages(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(log1p age, log1p time since last click)` of item rows, in the clock's unit."""
        first = self.first_seen[rows.clamp(min=0)]
        last = self.last_seen[rows.clamp(min=0)]
        age = torch.where(torch.isinf(first), 0.0, (self.clock - first).clamp(min=0).log1p())
        idle = torch.where(torch.isinf(last), 0.0, (self.clock - last).clamp(min=0).log1p())
        return age.float(), idle.float()

    def state_dict(self, rows: int | None = None) -> StateDict:
        """Each scale's prior, and the first and last click times of the first `rows` rows."""
        used = slice(0, self.capacity if rows is None else min(rows, self.capacity))
        state: StateDict = {
            "first_seen": host_copy(self.first_seen[used]),
            "last_seen": host_copy(self.last_seen[used]),
            "clock": self.clock,
        }
        for n, prior in enumerate(self.priors):
            state |= prefixed(f"scale{n}", prior.state_dict(rows))
        return state

    def load_state_dict(self, state: StateDict) -> None:
        """Restore `state_dict()` output of a `Trending` with as many scales."""
        rows = rows_of(state, "first_seen")
        first = tensor(state, "first_seen", (rows,), torch.float64)
        last = tensor(state, "last_seen", (rows,), torch.float64)
        clock = state.get("clock")
        for n, prior in enumerate(self.priors):
            prior.load_state_dict(part(state, f"scale{n}"))
        capacity = grown_capacity(0, rows, self.max_rows)
        self.first_seen = torch.full((capacity,), _NEVER, dtype=torch.float64, device=self.device)
        self.last_seen = self.first_seen.clone()
        self.first_seen[:rows] = first.to(self.device)
        self.last_seen[:rows] = last.to(self.device)
        self.clock = float(clock) if isinstance(clock, int | float) else 0.0
        self.version += 1
        self._forget_leaders()
