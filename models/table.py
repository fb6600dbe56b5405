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

    def gather(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of `rows`' values and Adagrad sums (to send them, or to remember them)."""
        rows = rows.to(self.device)
        return self.weight[rows], self.grad_sq[rows]

    def put(self, rows: torch.Tensor, weight: torch.Tensor, grad_sq: torch.Tensor) -> None:
        """Give existing `rows` these values and Adagrad sums (rows handed over from elsewhere)."""
        rows = rows.to(self.device)
        self.weight[rows] = weight.to(self.device, self.weight.dtype)
        self.grad_sq[rows] = grad_sq.to(self.device, self.grad_sq.dtype)

    def add(self, rows: torch.Tensor, weight: torch.Tensor, grad_sq: torch.Tensor) -> None:
        """Add another copy's changes to existing `rows`: values, and sums kept at 0 or more.

        A decayed bias sum can shrink, so a change may be negative; a sum never is.
        """
        rows = rows.to(self.device)
        self.weight.index_add_(0, rows, weight.to(self.device, self.weight.dtype))
        self.grad_sq.index_add_(0, rows, grad_sq.to(self.device, self.grad_sq.dtype))
        self.grad_sq[rows] = self.grad_sq[rows].clamp(min=0.0)

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
        applied: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sum `grads` per distinct row, take one row-wise Adagrad step each; return `rows`.

        Sync-free (no `unique`): see `_step_runs`. `applied` (a 0-dim bool on the
        device) leaves the whole step out when False, so a caller can refuse a
        non-finite step without reading it back. The rows are returned as given.
        """
        if rows.numel() == 0:
            return rows
        run_of, run_rows, runs = self._runs(rows)
        summed = torch.zeros(runs, self.dim, device=self.device, dtype=grads.dtype)
        summed.index_add_(0, run_of, grads)  # in the given order within a run
        self._step_runs(summed, run_rows, applied, learning_rate, eps)
        return rows

    def apply_bag_gradients(
        self,
        bags: torch.Tensor,
        grads: torch.Tensor,
        learning_rate: float,
        eps: float = 1e-8,
        *,
        applied: torch.Tensor | None = None,
    ) -> None:
        """Add event `e`'s gradient `grads[e]` to every row of its bag `bags[e]` (`-1`: none).

        The same step as `apply_gradients` over the bag's (row, gradient) pairs,
        without making the `[events, bag, dim]` copy of the gradients: one
        `index_add_` per bag column reads `grads` as it is.
        """
        if bags.numel() == 0:
            return
        run_of, run_rows, runs = self._runs(bags.reshape(-1))
        run_of = run_of.view(bags.shape)
        summed = torch.zeros(runs, self.dim, device=self.device, dtype=grads.dtype)
        for column in range(bags.shape[1]):
            summed.index_add_(0, run_of[:, column], grads)
        self._step_runs(summed, run_rows, applied, learning_rate, eps)

    def _runs(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Group `rows` without `unique`: each position's run, each run's row, the run count.

        Runs are the distinct values in sorted order, padded to a count known on the
        host (no more runs than positions, nor than rows plus a `-1` run); a padding
        run's row is `-1`, as is the run of `-1` entries.
        """
        n = rows.numel()
        runs = min(n, self.rows + 1)
        ordered, order = torch.sort(rows, stable=True)
        _, _, starts = run_bounds(ordered)
        run = torch.cumsum(starts.long(), 0) - 1  # run of each sorted position
        run_of = torch.empty_like(run).scatter_(0, order, run)  # ... of each given position
        run_rows = torch.full((runs,), -1, dtype=ordered.dtype, device=self.device)
        run_rows.scatter_(0, run, ordered)
        return run_of, run_rows, runs

    def _step_runs(
        self,
        summed: torch.Tensor,
        run_rows: torch.Tensor,
        applied: torch.Tensor | None,
        learning_rate: float,
        eps: float,
    ) -> None:
        """One row-wise Adagrad step per run: `summed[r]` is run `r`'s gradient sum.

        Runs whose row is `-1` (padding, `-1` entries) and every run when `applied`
        is False add zero (and multiply by one) to row 0, so no write is filtered.
        """
        keep = run_rows >= 0
        if applied is not None:
            keep &= applied
        rows = run_rows.clamp(min=0)
        if self.constant_last is not None:
            summed[:, -1] = 0.0
        squares = torch.stack([summed[:, :-1].square().mean(dim=1), summed[:, -1].square()], dim=1)
        if self.bias_decay:
            factor = torch.where(keep, self._decay[1], 1.0)
            self.grad_sq[:, 1].scatter_reduce_(0, rows, factor, reduce="prod")
        self.grad_sq.index_add_(0, rows, torch.where(keep.unsqueeze(1), squares, 0.0))
        scale = self.grad_sq[rows].sqrt() + eps
        summed[:, :-1] /= scale[:, :1]
        summed[:, -1] /= scale[:, 1]
        step = torch.where(keep.unsqueeze(1), summed, 0.0)
        self.weight.index_add_(0, rows, step, alpha=-learning_rate)
