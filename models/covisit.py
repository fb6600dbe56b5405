"""Co-visitation: for each item, its top-M co-clicked items with time-decayed counts.

Unordered (a pair `j, i` counts for `j`'s neighbour `i` and for `i`'s neighbour
`j`), apart from the ordered successor rings of `models.transitions`: "bought
together" and "what comes next" are different signals, and the ranker learns
how much each is worth. Each row holds at most `slots` neighbours, kept by a
Misra-Gries rule: a pair already held adds its weight; a new neighbour takes
the lightest slot if it outweighs it, and otherwise wears it down by its weight.
Heavy neighbours therefore stay, and a neighbour that keeps coming gets in.

Counts decay with the number of pairs folded in (half-life `half_life` pairs):
every count is stored inflated by `growth ** pairs_so_far`, so a decay costs
nothing per pair, and the table is rebased (one multiply) before it overflows.
"""

from __future__ import annotations

import math

import torch

from models.growth import grown_capacity
from models.segments import host_max, masked_put, ranks_in_runs, run_bounds
from models.state import StateDict, host_copy, rows_of, tensor
from models.take import take_rows

_REBASE = 60.0  # rebase once the inflation reaches e**_REBASE (far below float32's e**88)


class CoVisitation:
    """Per item row, its `slots` heaviest co-clicked item rows (int32) and decayed counts."""

    def __init__(self, slots: int, half_life: float, device: torch.device) -> None:
        """An empty table: `slots` neighbours per item, counts halving every `half_life` pairs."""
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        if not half_life > 0:
            raise ValueError(f"half_life must be > 0, got {half_life}")
        self.slots = slots
        self.half_life = half_life
        self.device = device
        self.max_rows: int | None = None  # growth never allocates past this (a row cap)
        self.neighbours = torch.full((0, slots), -1, dtype=torch.int32, device=device)
        self.counts = torch.zeros(0, slots, device=device)
        self.log_scale = 0.0  # counts are stored times exp(log_scale)
        # Fold only the distinct pairs, and find free slots once per row, not per pair: sizes
        # then follow the data, which costs a device a wait but a CPU nothing (there, 2.5x
        # faster on a batch of 4,096 clicks with 16 pairs each, half of them padding).
        self.compact = device.type == "cpu"

    @property
    def capacity(self) -> int:
        """Item rows allocated."""
        return int(self.neighbours.shape[0])

    def ensure_rows(self, rows: int) -> None:
        """Make item rows `0..rows-1` exist, with no neighbours."""
        if rows <= self.capacity:
            return
        capacity = grown_capacity(self.capacity, rows, self.max_rows)
        neighbours = torch.full((capacity, self.slots), -1, dtype=torch.int32, device=self.device)
        neighbours[: self.capacity] = self.neighbours
        counts = torch.zeros(capacity, self.slots, device=self.device)
        counts[: self.capacity] = self.counts
        self.neighbours, self.counts = neighbours, counts

    def reset(self, rows: torch.Tensor) -> None:
        """Forget `rows` (handed to new items): their neighbours, and them as a neighbour."""
        if rows.numel() == 0:
            return
        rows = rows.to(self.device)
        self.ensure_rows(int(rows.max()) + 1)
        self.neighbours[rows] = -1
        self.counts[rows] = 0.0
        stale = torch.isin(self.neighbours, rows.to(torch.int32))
        self.neighbours.masked_fill_(stale, -1)
        self.counts.masked_fill_(stale, 0.0)

    def add(
        self,
        before: torch.Tensor,
        after: torch.Tensor,
        weight: torch.Tensor,
        *,
        rows_ready: bool = False,
    ) -> None:
        """Fold pairs in, both ways round: `after` is a neighbour of `before` and back.

        A pair with a negative row (padding) or a row paired with itself is skipped.
        No shape depends on the data, so nothing waits on the device; `rows_ready`:
        the caller made every row exist, so the largest is not read back.
        """
        if before.numel() == 0:
            return
        held = (before >= 0) & (after >= 0) & (before != after)
        if not rows_ready:
            top = host_max(torch.where(held, torch.maximum(before, after), -1))
            if top < 0:
                return
            self.ensure_rows(top + 1)
        step = math.log(2.0) / self.half_life
        inflated = torch.where(held, weight.float(), 0.0) * math.exp(self.log_scale)
        self.log_scale += step * before.numel()  # padding ages the table a little: harmless
        rows = torch.cat([before, after]).clamp(min=0)
        others = torch.cat([after, before]).clamp(min=0)
        self._fold(rows, others, inflated.repeat(2), held.repeat(2))
        if self.log_scale > _REBASE:
            self.counts.mul_(math.exp(-self.log_scale))
            self.log_scale = 0.0

    def _fold(
        self, rows: torch.Tensor, others: torch.Tensor, weight: torch.Tensor, held: torch.Tensor
    ) -> None:
        """Add `weight` to `others` in the lists of `rows`: held ones add, new ones compete.

        Padded throughout (`held` marks real pairs): repeats of a pair are summed at
        the first of their run, and a masked write touches only the cells it means.
        """
        capacity = self.capacity
        keys = torch.where(held, rows * capacity + others, -1)
        keys, order = keys.sort(stable=True)
        weight, held = weight[order], held[order]
        first, _, starts = run_bounds(keys)
        summed = torch.zeros_like(weight).index_add_(0, first, weight)
        lead = starts & held  # one position per distinct pair carries its summed weight
        if self.compact:
            at = lead.nonzero().squeeze(1)
            keys, summed, lead = keys[at], summed[at], lead[at]
        rows, others = keys.clamp(min=0) // capacity, keys.clamp(min=0) % capacity
        slot_hit = self.neighbours[rows] == others.unsqueeze(1).to(torch.int32)
        # the first slot holding the pair (0 where none does), and whether one does: one
        # argmax and a gather, where two `any` passes cost twice the argmax on a CPU
        hit_slot = slot_hit.to(torch.uint8).argmax(1)
        held_already = slot_hit.gather(1, hit_slot.unsqueeze(1)).squeeze(1)
        hit = held_already & lead
        flat = self.counts.view(-1)
        flat.index_add_(0, rows * self.slots + hit_slot, torch.where(hit, summed, 0.0))
        new = lead & ~held_already
        # Each row's new neighbours, heaviest first, meet its slots lightest first.
        by_weight = torch.argsort(torch.where(new, -summed, torch.inf), stable=True)
        by_row = by_weight[torch.argsort(torch.where(new, rows, -1)[by_weight], stable=True)]
        rows, others, summed, new = rows[by_row], others[by_row], summed[by_row], new[by_row]
        rank, _ = ranks_in_runs(torch.where(new, rows, -1), new)
        fits = new & (rank < self.slots)
        slot = self._lightest(rows, rank.clamp(max=self.slots - 1))
        cell = rows * self.slots + slot
        current = flat[cell]
        wins = fits & (summed > current)
        worn = fits & ~wins
        masked_put(self.neighbours.view(-1), cell, others.to(torch.int32), wins)
        masked_put(flat, cell, torch.where(wins, summed, current - summed), wins | worn)

    def _lightest(self, rows: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
        """The slot of the `rank`-th lightest count in each of `rows` (sorted), stable on ties."""
        if not self.compact:
            lightest = torch.argsort(self.counts[rows], dim=1, stable=True)
            return lightest.gather(1, rank.unsqueeze(1)).squeeze(1)
        distinct, which = torch.unique_consecutive(rows, return_inverse=True)
        return torch.argsort(self.counts[distinct], dim=1, stable=True)[which, rank]

    def scores(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(neighbours, weight)` of item rows (`-1` rows: none), weight = count share of the row.

        A share over the square root of the row's total mass: `P(i | j)` damped by the
        evidence behind it, as the successor rings do.
        """
        if self.capacity == 0:
            shape = (*rows.shape, self.slots)
            return torch.full(shape, -1, dtype=torch.int64, device=self.device), torch.zeros(
                shape, device=self.device
            )
        source = rows.clamp(min=0, max=self.capacity - 1)
        neighbours = take_rows(self.neighbours, source).long()
        counts = take_rows(self.counts, source).clamp(min=0) * math.exp(-self.log_scale)
        total = counts.sum(-1, keepdim=True).clamp(min=1e-12).sqrt()
        valid = (rows >= 0).unsqueeze(-1) & (neighbours >= 0)
        return neighbours.masked_fill(~valid, -1), (counts / total).masked_fill(~valid, 0.0)

    def state_dict(self, rows: int | None = None) -> StateDict:
        """Copies of the first `rows` item rows' neighbours and counts, decay folded in."""
        used = slice(0, self.capacity if rows is None else min(rows, self.capacity))
        return {
            "neighbours": host_copy(self.neighbours[used]),
            "counts": host_copy(self.counts[used] * math.exp(-self.log_scale)),
        }

    def load_state_dict(self, state: StateDict) -> None:
        """Hold the rows of `state_dict()` output (copied in) of a table with as many slots."""
        rows = rows_of(state, "neighbours")
        neighbours = tensor(state, "neighbours", (rows, self.slots), torch.int32)
        counts = tensor(state, "counts", (rows, self.slots), torch.float32)
        capacity = grown_capacity(0, rows, self.max_rows)
        self.neighbours = torch.full(
            (capacity, self.slots), -1, dtype=torch.int32, device=self.device
        )
        self.counts = torch.zeros(capacity, self.slots, device=self.device)
        self.neighbours[:rows] = neighbours.to(self.device)
        self.counts[:rows] = counts.to(self.device)
        self.log_scale = 0.0
