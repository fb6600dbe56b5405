"""Unit tests for `models.table.EmbeddingTable`: growth, row-wise Adagrad steps, row access."""

from __future__ import annotations

import torch

from models.table import EmbeddingTable

DIM = 4


def _table(
    device: torch.device, rows: int, constant_last: float | None = None, bias_decay: float = 0.0
) -> EmbeddingTable:
    """A table of `rows` random rows of `DIM` floats on `device`, seeded."""
    generator = torch.Generator(device=device).manual_seed(0)
    table = EmbeddingTable(
        DIM,
        device,
        init_std=0.1,
        generator=generator,
        constant_last=constant_last,
        bias_decay=bias_decay,
    )
    table.ensure_rows(rows)
    return table


def _on(device: torch.device, rows: list[int] | list[list[int]]) -> torch.Tensor:
    """Integer rows on `device`."""
    return torch.tensor(rows, dtype=torch.int64, device=device)


def _adagrad(old: torch.Tensor, summed: torch.Tensor, lr: float) -> torch.Tensor:
    """One row-wise Adagrad step from a zero sum, on the host in float64: factors, then bias."""
    factors, bias = summed[:-1].double(), summed[-1].double()
    step = torch.cat([factors / factors.square().mean().sqrt(), (bias / bias.abs()).unsqueeze(0)])
    return (old.double() - lr * step).float()


def test_a_row_wise_adagrad_step_moves_exactly_the_rows_it_was_given(device: torch.device) -> None:
    """Gradients are summed per row, each row takes one Adagrad step, and no other row moves."""
    table = _table(device, 5)
    before = table.view().cpu().clone()
    grads = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.5, 0.5, -1.0, -1.0], [2.0, 1.0, 1.0, 1.0]])
    table.apply_gradients(_on(device, [3, 1, 3]), grads.to(device), 0.1)
    after = table.view().cpu()
    assert torch.equal(after[[0, 2, 4]], before[[0, 2, 4]])
    torch.testing.assert_close(after[3], _adagrad(before[3], grads[0] + grads[2], 0.1))
    torch.testing.assert_close(after[1], _adagrad(before[1], grads[1], 0.1))
    sums = table.grad_sq[: table.rows].cpu()
    torch.testing.assert_close(sums[3], torch.tensor([(9 + 1 + 2.25) / 3, 16.0]))
    assert torch.equal(sums[[0, 2, 4]], torch.zeros(3, 2))


def test_a_bag_step_is_the_step_over_its_row_gradient_pairs(device: torch.device) -> None:
    """`apply_bag_gradients` moves rows as `apply_gradients` over each (bag row, gradient) pair."""
    bags, grads = _table(device, 4), _table(device, 4)
    event_grads = torch.tensor([[1.0, 0.0, -1.0, 2.0], [0.5, 2.0, 1.0, -1.0]], device=device)
    bags.apply_bag_gradients(_on(device, [[0, 2], [2, -1]]), event_grads, 0.05)  # -1: no row
    pairs = event_grads[[0, 0, 1]]
    grads.apply_gradients(_on(device, [0, 2, 2]), pairs, 0.05)
    torch.testing.assert_close(bags.view().cpu(), grads.view().cpu())  # summed in another order
    torch.testing.assert_close(bags.grad_sq[:4].cpu(), grads.grad_sq[:4].cpu())


def test_a_refused_step_and_padding_rows_change_nothing(device: torch.device) -> None:
    """With `applied` False, or rows of `-1`, no weight or Adagrad sum moves, not even row 0."""
    table = _table(device, 3)
    weight, sums = table.view().cpu().clone(), table.grad_sq[:3].cpu().clone()
    grads = torch.ones(2, DIM, device=device)
    refused = torch.zeros((), dtype=torch.bool, device=device)
    table.apply_gradients(_on(device, [0, 2]), grads, 0.1, applied=refused)
    table.apply_gradients(_on(device, [-1, -1]), grads, 0.1)
    assert torch.equal(table.view().cpu(), weight)  # the capacity past the rows is uninitialised
    assert torch.equal(table.grad_sq[:3].cpu(), sums)


def test_a_constant_last_column_stays_pinned_and_the_bias_sum_decays(device: torch.device) -> None:
    """A pinned last column never moves; `bias_decay` shrinks a bias sum at each of its steps."""
    pinned = _table(device, 2, constant_last=1.0)
    pinned.apply_gradients(_on(device, [1]), torch.full((1, DIM), 3.0, device=device), 0.1)
    assert pinned.view()[:, -1].cpu().tolist() == [1.0, 1.0]
    assert pinned.grad_sq[1, 1].item() == 0.0
    decayed = _table(device, 2, bias_decay=0.5)
    for bias in (2.0, 3.0):
        grad = torch.tensor([[0.0, 0.0, 0.0, bias]], device=device)
        decayed.apply_gradients(_on(device, [0]), grad, 0.1)
    torch.testing.assert_close(decayed.grad_sq[0, 1].cpu(), torch.tensor(4.0 * 0.5 + 9.0))


def test_growth_keeps_used_rows_and_reset_makes_rows_fresh(device: torch.device) -> None:
    """Growing past the capacity keeps every row and sum; a reset row has fresh values, no sum."""
    table = _table(device, 3)
    table.apply_gradients(_on(device, [0, 1]), torch.ones(2, DIM, device=device), 0.1)
    weight, sums = table.view().cpu().clone(), table.grad_sq[:3].cpu().clone()
    table.ensure_rows(2000)
    assert table.rows == 2000
    assert table.capacity >= 2000
    assert torch.equal(table.view()[:3].cpu(), weight)
    assert torch.equal(table.grad_sq[:3].cpu(), sums)
    assert torch.equal(table.grad_sq[3:2000].cpu(), torch.zeros(1997, 2))
    table.reset(_on(device, [1]))
    assert not torch.equal(table.view()[1].cpu(), weight[1])
    assert torch.equal(table.view()[[0, 2]].cpu(), weight[[0, 2]])
    assert table.grad_sq[1].cpu().tolist() == [0.0, 0.0]
    assert table.view()[1, -1].item() == 0.0  # a fresh bias starts at zero


CPU = torch.device("cpu")


def _access_table(rows: int = 4) -> EmbeddingTable:
    table = EmbeddingTable(3, CPU, init_std=0.1, generator=torch.Generator().manual_seed(0))
    table.ensure_rows(rows)
    return table


def test_gathered_rows_are_copies_that_put_installs_elsewhere() -> None:
    """`gather` copies (later writes leave it alone); `put` gives other rows those values."""
    table = _access_table()
    weight, grad_sq = table.gather(torch.tensor([1]))
    table.weight[1] = 9.0
    assert not torch.equal(weight[0], table.weight[1])
    other = _access_table()
    other.put(torch.tensor([3]), weight, grad_sq + 2.0)
    assert torch.equal(other.weight[3], weight[0])
    assert torch.equal(other.grad_sq[3], torch.full((2,), 2.0))


def test_added_changes_sum_and_adagrad_sums_never_go_below_zero() -> None:
    """`add` adds values (repeats summed) and sums, clamping a sum that would turn negative."""
    table = _access_table()
    table.grad_sq[2] = torch.tensor([1.0, 0.5])
    before = table.weight[2].clone()
    change = torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    table.add(torch.tensor([2, 2]), change, torch.tensor([[0.5, -2.0], [0.0, 0.0]]))
    assert torch.allclose(table.weight[2], before + change.sum(0))
    assert torch.equal(table.grad_sq[2], torch.tensor([1.5, 0.0]))
