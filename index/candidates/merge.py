"""Per-user merging of proposals without Python loops: one flat sort, mark runs, scatter.

Shapes stay static (a user's distinct rows land in the first slots of a row as
wide as the input), so the same code serves every batch and device. Rows are
sorted as one flat vector of `(user, row)` keys: on a CPU that costs half a
per-row sort of the same matrix, and the order is the same.
"""

from __future__ import annotations

import numpy as np
import torch

_ROW_BITS = 32  # item rows stay below 2**31; the user's position takes the bits above
# torch sorts a 1-D integer tensor by radix from this length; below it, by comparison, at
# about 47 ns an element on a CPU (10,000 keys: 476 us, 32,768: 352). numpy's argsort takes
# 9 ns an element with AVX-512, 18 with AVX2 alone and 51 with neither (10,000 int32 keys,
# numpy 2.4 with NPY_DISABLE_CPU_FEATURES; 2026-12-07, one thread, an Intel Xeon).
RADIX_FROM = 32_768


def sort_rows(rows: torch.Tensor, below: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`rows.sort(dim=1)` (`[users, n]`, values >= -1), by one flat sort of `(user, row)` keys.

    `below`, a bound on the rows known on the host (the item rows' extent): where
    the users and it fit, the keys are 32-bit (a chunk of 1,024 users over up to 2M
    items), which a CPU sorts in about half the time of 64-bit keys. The bound is
    given, not read from `rows`, so nothing waits on a device.
    """
    users, n = rows.shape
    if users == 0 or n == 0:
        return rows.clone(), torch.zeros_like(rows)
    bits = _ROW_BITS
    if below is not None:
        needed = max(1, below).bit_length()  # rows + 1 lie in [0, below]
        if (users - 1) << needed < 1 << 31:
            bits = needed
    # each user's offset, the +1 that lifts -1 to 0 folded in: one pass over the rows each
    # way, where shifting, adding and masking them took three (2026-12-07)
    offset = (torch.arange(users, device=rows.device).unsqueeze(1) << bits) + 1
    if bits < _ROW_BITS:
        offset = offset.int()
        keys = rows.int() + offset
    else:
        keys = rows + offset
    keys, order = flat_sort(keys.view(-1))
    ordered = (keys.view(users, n) - offset).long()
    starts = torch.arange(0, users * n, n, device=rows.device).unsqueeze(1)
    return ordered, order.view(users, n) - starts


def flat_sort(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`keys.sort()` of 1-D integer keys; where torch would sort a CPU's by comparison, numpy.

    Equal keys may come out in either order (neither sort is stable).
    """
    if keys.device.type != "cpu" or keys.numel() >= RADIX_FROM:
        return keys.sort()
    values = keys.numpy()
    order = np.argsort(values)
    return torch.from_numpy(values[order]), torch.from_numpy(order)


def distinct_slots(
    rows: torch.Tensor, below: int | None = None, trim: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each user's distinct rows `[users, n]` and the slot each input position went to.

    Rows come out ascending with `-1` in unused slots; the slots let values be
    scattered where they lie (no gather). A `-1` input lands in a slot that holds
    `-1`, so what is written there is padding. `trim`: only as many slots as the
    fullest user fills (a shape read from the data: free on a CPU, a wait on a device).
    """
    ordered, order = sort_rows(rows, below)
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    slot = first.cumsum(1) - 1
    width = int(slot[:, -1].max()) + 1 if trim and slot.numel() else rows.shape[1]
    out_rows = rows.new_full((rows.shape[0], width), -1).scatter_(1, slot, ordered)
    return out_rows, torch.empty_like(slot).scatter_(1, order, slot)


def merge_rows(
    rows: torch.Tensor,
    sums: torch.Tensor,
    maxes: torch.Tensor,
    below: int | None = None,
    trim: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct rows per user, `sums` summed and `maxes` maximised over repeats.

    `rows` is `[users, n]` (`-1` ignored), `sums` and `maxes` `[users, n, c]`.
    Returns rows `[users, n]` (`-1` in unused slots; `trim`: as many as the fullest
    user fills) and the two reduced value tensors (0 in unused slots), from one sort.
    """
    out_rows, where = distinct_slots(rows, below, trim)
    unused = (out_rows < 0).unsqueeze(2)
    summed = _per_channel(sums, where, out_rows.shape[1], "sum").masked_fill_(unused, 0.0)
    maxed = _per_channel(maxes, where, out_rows.shape[1], "amax").masked_fill_(unused, 0.0)
    return out_rows, summed, maxed


def _per_channel(
    values: torch.Tensor, where: torch.Tensor, width: int, reduce: str
) -> torch.Tensor:
    """`values` `[users, n, c]` summed or maximised into `width` slots, as `where` says.

    One 2-D scatter per channel: over `[users, n, 1]` a CPU's `scatter_add_` took six
    times as long, and its amax twice (2026-12-07, 1,024 users x 320 rows).
    """
    shape = (where.shape[0], width)
    if values.shape[2] == 0:
        return values.new_empty((*shape, 0))
    if reduce == "sum":
        channels = [
            values.new_zeros(shape).scatter_add_(1, where, values[:, :, c])
            for c in range(values.shape[2])
        ]
    else:
        channels = [
            values.new_full(shape, -torch.inf).scatter_reduce_(
                1, where, values[:, :, c], reduce="amax"
            )
            for c in range(values.shape[2])
        ]
    return torch.stack(channels, 2)


def best(rows: torch.Tensor, scores: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `width` highest-scoring valid rows per user, best first (`-1`, `-inf` past them)."""
    chosen, top, _ = best_at(rows, scores, width)
    return chosen, top


def best_at(
    rows: torch.Tensor, scores: torch.Tensor, width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`best`, with where each chosen row sat in `rows` (for values aligned with them)."""
    scores = scores.masked_fill(rows < 0, float("-inf"))
    take = min(width, rows.shape[1])
    top, picked = scores.topk(take, dim=1)
    chosen = rows.gather(1, picked).masked_fill(torch.isinf(top) & (top < 0), -1)
    if take < width:
        pad = width - take
        chosen = torch.nn.functional.pad(chosen, (0, pad), value=-1)
        top = torch.nn.functional.pad(top, (0, pad), value=float("-inf"))
        picked = torch.nn.functional.pad(picked, (0, pad), value=0)
    return chosen, top, picked


def member(rows: torch.Tensor, sets: torch.Tensor, below: int | None = None) -> torch.Tensor:
    """`[users, n]` bool: whether each row is in its user's `sets` row (`-1` pads never match)."""
    if sets.shape[1] == 0:
        return torch.zeros_like(rows, dtype=torch.bool)
    ordered = sort_rows(sets, below)[0].contiguous()
    at = torch.searchsorted(ordered, rows.contiguous()).clamp(max=ordered.shape[1] - 1)
    return (ordered.gather(1, at) == rows) & (rows >= 0)
