"""Group-by on the device without a host sync: runs of a sorted key, masked writes.

`torch.unique`, `unique_consecutive`, `nonzero`, boolean-mask indexing and
`repeat_interleave` without `output_size` all size their output by the data,
so on a GPU each one waits for the device to tell the host how big it is (a
stream sync per call; DESIGN.md, "The GPU hot path"). The helpers here keep
every shape the input's: a sorted key's runs are described per position
(where the run starts and ends), and a write that should happen only for some
positions is done for all of them, with the others adding zero.
"""

from __future__ import annotations

import torch

# Row indices stay far below 2**31 (item rows are stored as int32 already), so a
# (row, row) pair packs into one int64 key as `first * PAIR_SPAN + second`.
PAIR_SPAN = 1 << 31


def host_max(values: torch.Tensor) -> int:
    """The largest value, read on the host: free for a CPU tensor, one sync on a device."""
    if values.device.type == "cpu":
        return int(values.numpy().max())
    return int(values.max())


def run_bounds(sorted_keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per position of a sorted 1-D key: its run's first and last index, and if it starts one.

    `torch.unique_consecutive(..., return_counts=True)` describes the same runs,
    but by run, so its length is the data's; this is by position, the input's length.
    """
    n = sorted_keys.numel()
    index = torch.arange(n, device=sorted_keys.device)
    change = sorted_keys[1:] != sorted_keys[:-1]
    edge = torch.ones(1, dtype=torch.bool, device=sorted_keys.device)
    starts = torch.cat([edge, change])
    ends = torch.cat([change, edge])
    first = torch.cummax(torch.where(starts, index, 0), 0).values
    last = torch.cummin(torch.where(ends, index, n).flip(0), 0).values.flip(0)
    return first, last, starts


def ranks_in_runs(
    sorted_keys: torch.Tensor, counted: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per position: how many `counted` positions precede it in its run, and its run's total.

    `sorted_keys` comes from a stable sort, so "precede" keeps the original order.
    """
    first, last, _ = run_bounds(sorted_keys)
    inclusive = torch.cumsum(counted.long(), 0)
    exclusive = inclusive - counted.long()
    rank = exclusive - exclusive[first]
    total = inclusive[last] - exclusive[first]
    return rank, total


def masked_put(
    flat: torch.Tensor, index: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
) -> None:
    """`flat[index[mask]] = values[mask]` without compacting: exact, with no sync.

    At most one masked-in position may name a cell (others naming it add zero).
    The cell is first zeroed (`old + -old`, exact for finite values), then the
    value added (`0 + value`), so floats come out bit-exact too.
    """
    zero = torch.zeros((), dtype=flat.dtype, device=flat.device)
    old = flat[index]
    flat.index_add_(0, index, torch.where(mask, -old, zero))
    flat.index_add_(0, index, torch.where(mask, values.to(flat.dtype), zero))
