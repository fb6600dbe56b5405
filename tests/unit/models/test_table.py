"""Unit tests for `models.table.EmbeddingTable`'s row access: what a hand-over and a delta use."""

from __future__ import annotations

import torch

from models.table import EmbeddingTable

CPU = torch.device("cpu")


def _table(rows: int = 4) -> EmbeddingTable:
    table = EmbeddingTable(3, CPU, init_std=0.1, generator=torch.Generator().manual_seed(0))
    table.ensure_rows(rows)
    return table


def test_gathered_rows_are_copies_that_put_installs_elsewhere() -> None:
    """`gather` copies (later writes leave it alone); `put` gives other rows those values."""
    table = _table()
    weight, grad_sq = table.gather(torch.tensor([1]))
    table.weight[1] = 9.0
    assert not torch.equal(weight[0], table.weight[1])
    other = _table()
    other.put(torch.tensor([3]), weight, grad_sq + 2.0)
    assert torch.equal(other.weight[3], weight[0])
    assert torch.equal(other.grad_sq[3], torch.full((2,), 2.0))


def test_added_changes_sum_and_adagrad_sums_never_go_below_zero() -> None:
    """`add` adds values (repeats summed) and sums, clamping a sum that would turn negative."""
    table = _table()
    table.grad_sq[2] = torch.tensor([1.0, 0.5])
    before = table.weight[2].clone()
    change = torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    table.add(torch.tensor([2, 2]), change, torch.tensor([[0.5, -2.0], [0.0, 0.0]]))
    assert torch.allclose(table.weight[2], before + change.sum(0))
    assert torch.equal(table.grad_sq[2], torch.tensor([1.5, 0.0]))
