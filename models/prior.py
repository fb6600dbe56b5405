"""A time-decayed popularity prior per item, kept in log space on the device."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch

from models.growth import grown_capacity
from models.segments import run_bounds
from models.state import StateDict, host_copy, number, rows_of, tensor, value

FLOOR = -1.0e3  # log mass of an item never clicked (or decayed past any use): ranks last
_REBASE = 32.0  # rebase once the clock runs this many time constants past the reference


class PopularityPrior:
    """Each item's `L_i = log Σ_k w_k exp((t_k - ref) / tau)` over its clicks.

    `exp(L_i - now / tau)` is the item's click mass decayed with time constant
    `tau`: what is popular now. Everything is relative to a reference time
    `ref`; as the clock runs, every item's `L` would only shift by the same
    constant, which changes no ranking and cancels in a softmax, so it is left
    out, and `ref` is moved forward (one O(items) rebase) only every
    `_REBASE * tau` so the numbers stay small. A batch updates only the items
    it clicked (one `logaddexp` per distinct item) and returns the change of
    their `L`, for the caller to fold into their bias. float64 throughout.
    """

    def __init__(self, tau: float, device: torch.device) -> None:
        """Create an empty prior with time constant `tau` (in the clock's unit)."""
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        self.tau = tau
        self.device = device
        self.max_rows: int | None = None  # growth never allocates past this (a row cap)
        self.log_mass = torch.empty(0, dtype=torch.float64, device=device)
        self.ref = 0.0  # the reference time: L is relative to it
        self.clock = -math.inf  # newest time folded in

    @property
    def capacity(self) -> int:
        """Item rows allocated."""
        return int(self.log_mass.shape[0])

    def ensure_rows(self, rows: int) -> None:
        """Make rows `0..rows-1` exist (fresh ones hold no clicks)."""
        if rows <= self.capacity:
            return
        capacity = grown_capacity(self.capacity, rows, self.max_rows)
        grown = torch.full((capacity,), FLOOR, dtype=torch.float64, device=self.device)
        grown[: self.capacity] = self.log_mass
        self.log_mass = grown

    def state_dict(self, rows: int | None = None) -> StateDict:
        """A copy of the first `rows` log masses (all by default), the reference and the clock.

        A clock that never ran is None: JSON has no infinity.
        """
        used = slice(0, self.capacity if rows is None else min(rows, self.capacity))
        return {
            "log_mass": host_copy(self.log_mass[used]),
            "ref": self.ref,
            "clock": self.clock if math.isfinite(self.clock) else None,
        }

    def load_state_dict(self, state: StateDict) -> None:
        """Hold the rows of `state_dict()` output (copied in), its reference and clock."""
        rows = rows_of(state, "log_mass")
        log_mass = tensor(state, "log_mass", (rows,), torch.float64)
        ref = number(state, "ref")
        clock = -math.inf if value(state, "clock") is None else number(state, "clock")
        capacity = grown_capacity(0, rows, self.max_rows)
        self.log_mass = torch.full((capacity,), FLOOR, dtype=torch.float64, device=self.device)
        self.log_mass[:rows] = log_mass.to(self.device)
        self.ref, self.clock = ref, clock

    def time_of(self, clock_kind: str, events: int, event_ts: torch.Tensor | float | None) -> float:
        """The prior's time for a batch of `events`: counted in events, or its newest time.

        With no time given (or an empty one) the clock stands still. Reading a device
        tensor's newest time is one sync; a float (the worker's batch clock) is none.
        """
        base = self.clock if math.isfinite(self.clock) else 0.0
        if clock_kind == "events":
            return base + events
        if isinstance(event_ts, float | int):
            return float(event_ts)
        if event_ts is not None and event_ts.numel():
            if event_ts.device.type == "cpu":
                return float(event_ts.numpy().max())
            return float(event_ts.max())
        return base

    def log_mass_of(self, rows: torch.Tensor) -> torch.Tensor:
        """A copy of `rows`' log masses (`L`)."""
        return self.log_mass[rows.to(self.device)]

    def decayed(self, log_mass: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Click masses of these `L` values decayed to the clock (which must have run)."""
        mass: npt.NDArray[np.float64] = np.exp(log_mass - (self.clock - self.ref) / self.tau)
        return mass

    def reset(self, rows: torch.Tensor) -> None:
        """Forget the clicks of `rows` (rows handed to new items)."""
        if rows.numel() == 0:
            return
        rows = rows.to(self.device)
        self.ensure_rows(int(rows.max()) + 1)
        self.log_mass[rows] = FLOOR

    def add(
        self, items: torch.Tensor, weights: torch.Tensor, now: float, rows: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fold clicks at time `now` in; return the rows whose `L` changed and by how much.

        After a rebase every one of the first `rows` rows changed. Rows may repeat
        (a batch's item once per click); a repeat's change is 0, so `index_add_` of the
        changes per row is right. A click of weight 0 changes nothing (a refused step).
        """
        self.ensure_rows(rows)
        if math.isfinite(self.clock):
            now = max(now, self.clock)  # the clock never runs backwards
        else:
            self.ref = now  # the first batch sets the reference
        self.clock = now
        changed: list[torch.Tensor] = []
        deltas: list[torch.Tensor] = []
        if (now - self.ref) / self.tau > _REBASE:
            old = self.log_mass[:rows].clone()
            shift = (now - self.ref) / self.tau
            self.log_mass[:rows] = (old - shift).clamp(min=FLOOR)
            self.ref = now
            changed.append(torch.arange(rows, device=self.device))
            deltas.append(self.log_mass[:rows] - old)
        if items.numel():
            # Per distinct item, padded to the batch (no `unique`, no sync): each position
            # gets its run's mass; all write the same new L, and only a run's first
            # position carries the change, so summing the changes per row counts it once.
            ordered, order = torch.sort(items, stable=True)
            _, _, starts = run_bounds(ordered)
            run = torch.cumsum(starts.long(), 0) - 1
            mass = torch.zeros(items.numel(), dtype=torch.float64, device=self.device)
            mass.index_add_(0, run, weights[order].to(torch.float64))
            old = self.log_mass[ordered]
            new = torch.logaddexp(old, mass[run].log() + (now - self.ref) / self.tau)
            self.log_mass[ordered] = new
            changed.append(ordered)
            deltas.append(torch.where(starts, new - old, 0.0))
        if not changed:
            empty = torch.empty(0, dtype=torch.int64, device=self.device)
            return empty, torch.empty(0, dtype=torch.float64, device=self.device)
        return torch.cat(changed), torch.cat(deltas)
