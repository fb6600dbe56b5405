"""A growable embedding table with row-wise Adagrad state, on one torch device."""

from __future__ import annotations

import torch

from models.growth import grown_capacity
from models.segments import run_bounds
from models.state import StateDict, host_copy, rows_of, tensor


class EmbeddingTable:
    """Rows of `dim` floats that grow by doubling, plus each row's Adagrad sum.

    Row-wise Adagrad (one accumulator per row, as in large-scale recommenders)
    adapts the step per user and per item at 1/dim of full Adagrad's memory:
    a row seen once moves fast, a row seen a million times settles. The last
    column (an item's bias, or a user's constant 1) keeps an accumulator of its
    own: a bias gradient is an order larger than a factor's, and sharing one
    accumulator would freeze the factors.
    """

    def __init__(
        self,
        dim: int,
        device: torch.device,
        *,
        init_std: float,
        generator: torch.Generator,
        constant_last: float | None = None,
        bias_decay: float = 0.0,
    ) -> None:
        """Create an empty table; `constant_last` pins the last column (a bias input).

        `bias_decay` > 0 decays the last column's accumulator by that factor at each of
        the row's steps (its step then never shrinks to nothing: a bias can follow a trend).
        """
        self.bias_decay = bias_decay
        self.dim = dim
        self.device = device
        self.init_std = init_std
        self.constant_last = constant_last
        self._generator = generator
        self.rows = 0
        self.max_rows: int | None = None  # growth never allocates past this (a row cap)
        self.weight = torch.empty(0, dim, device=device)
        self.grad_sq = torch.empty(0, 2, device=device)
        # the accumulators' decay per column, made once (a tensor built in a step is an upload)
        self._decay = torch.tensor([1.0, bias_decay], device=device)

    @property
    def capacity(self) -> int:
        """Rows allocated, used or not."""
        return int(self.weight.shape[0])

    def ensure_rows(self, rows: int) -> None:
        """Make rows `0..rows-1` exist, initialising new ones at random."""
        if rows <= self.rows:
            return
        if rows > self.capacity:
            capacity = grown_capacity(self.capacity, rows, self.max_rows)
            weight = torch.empty(capacity, self.dim, device=self.device)
            weight[: self.rows] = self.weight[: self.rows]
            grad_sq = torch.zeros(capacity, 2, device=self.device)
            grad_sq[: self.rows] = self.grad_sq[: self.rows]
            self.weight, self.grad_sq = weight, grad_sq
        self.weight[self.rows : rows] = self._fresh(rows - self.rows)
        self.grad_sq[self.rows : rows] = 0.0
        self.rows = rows

    def state_dict(self) -> StateDict:
        """Copies of the used rows and their Adagrad sums (the row count is their length)."""
        return {
            "weight": host_copy(self.weight[: self.rows]),
            "grad_sq": host_copy(self.grad_sq[: self.rows]),
        }

    def load_state_dict(self, state: StateDict) -> None:
        """Hold exactly the rows of `state_dict()` output (copied in), with room to grow."""
        rows = rows_of(state, "weight")
        weight = tensor(state, "weight", (rows, self.dim), self.weight.dtype)
        grad_sq = tensor(state, "grad_sq", (rows, 2), self.grad_sq.dtype)
        capacity = grown_capacity(0, rows, self.max_rows)
        self.weight = torch.empty(capacity, self.dim, device=self.device)
        self.grad_sq = torch.zeros(capacity, 2, device=self.device)
        self.weight[:rows] = weight.to(self.device)
        self.grad_sq[:rows] = grad_sq.to(self.device)
        self.rows = rows

    def _fresh(self, count: int) -> torch.Tensor:
        fresh = torch.randn(count, self.dim, generator=self._generator, device=self.device)
        fresh.mul_(self.init_std)
        fresh[:, -1] = 0.0 if self.constant_last is None else self.constant_last
        return fresh

    def reset(self, rows: torch.Tensor) -> None:
        """Make existing `rows` fresh again: new random values, no optimiser state."""
        if rows.numel() == 0:
            return
        rows = rows.to(self.device)
        self.weight[rows] = self._fresh(rows.numel())
        self.grad_sq[rows] = 0.0

    def view(self) -> torch.Tensor:
        """The used rows, as a view that stays valid until the next growth."""
        used: torch.Tensor = self.weight[: self.rows]
        return used

    def apply_gradients(
        self,
        rows: torch.Tensor,
        grads: torch.Tensor,
        learning_rate: float,
        eps: float = 1e-8,
        *,
        mask: torch.Tensor | None = None,
        applied: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sum `grads` per distinct row, take one row-wise Adagrad step each; return `rows`.

        Sync-free (no `unique`): the rows are sorted, each position gets its run's
        summed gradient, and every position of a run writes the same new row, so a
        repeated row is stepped once. `mask` (per position) leaves a position's
        gradient out (its row must still be a valid index); `applied` (a 0-dim bool
        on the device) leaves the whole step out when False, so a caller can refuse
        a non-finite step without reading it back first. The rows are returned as
        given, repeats included.
        """
        n = rows.numel()
        if n == 0:
            return rows
        ordered, order = torch.sort(rows, stable=True)  # stable: sums in the given order
        _, _, starts = run_bounds(ordered)
        run = torch.cumsum(starts.long(), 0) - 1
        grads = grads[order]
        if mask is not None:
            held = mask[order]
            grads = torch.where(held.unsqueeze(1), grads, 0.0)
        summed = torch.zeros(n, self.dim, device=self.device, dtype=grads.dtype)
        summed.index_add_(0, run, grads)
        summed = summed[run]
        if self.constant_last is not None:
            summed[:, -1] = 0.0
        squares = torch.stack([summed[:, :-1].square().mean(dim=1), summed[:, -1].square()], dim=1)
        old_sq = self.grad_sq[ordered]
        new_sq = old_sq
        if self.bias_decay:
            new_sq = new_sq * self._decay
        new_sq = new_sq + squares
        scale = new_sq.sqrt() + eps
        step = summed.clone()
        step[:, :-1] /= scale[:, :1]
        step[:, -1] /= scale[:, 1]
        old = self.weight[ordered]
        new = old.add(step, alpha=-learning_rate)
        keep = applied
        if mask is not None:  # a run none of whose positions is held is left as it is
            held_runs = torch.zeros(n, dtype=torch.long, device=self.device)
            held_runs.index_add_(0, run, held.long())
            keep = held_runs[run] > 0 if keep is None else (held_runs[run] > 0) & keep
        if keep is not None:
            keep = keep.expand(n).unsqueeze(1)
            new, new_sq = torch.where(keep, new, old), torch.where(keep, new_sq, old_sq)
        self.weight[ordered] = new  # every position of a run writes the same values
        self.grad_sq[ordered] = new_sq
        return rows
