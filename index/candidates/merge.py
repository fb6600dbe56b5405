"""Per-user merging of proposals without Python loops: sort, mark the first of a run, scatter.

Shapes stay static (a user's distinct rows land in the first slots of a row as
wide as the input), so the same code serves every batch and device.
"""

from __future__ import annotations

import torch


def merge_rows(
    rows: torch.Tensor, values: torch.Tensor, reduce: str = "sum"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct rows per user and their values reduced (`sum` or `amax`) over repeats.

    `rows` is `[users, n]` (`-1` ignored), `values` `[users, n, c]`. Returns rows
    `[users, n]` (`-1` in unused slots) and values `[users, n, c]` (0 there).
    """
    channels = values.shape[2]
    ordered, order = rows.sort(dim=1)
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    slot = first.cumsum(1) - 1
    out_rows = torch.full_like(rows, -1).scatter_(1, slot, ordered)
    # each input position's slot, so values are scattered where they lie (no gather)
    where = torch.empty_like(slot).scatter_(1, order, slot)
    index = where.unsqueeze(2).expand(-1, -1, channels)
    out = torch.zeros_like(values)
    if reduce == "sum":
        out.scatter_add_(1, index, values)
    else:
        out.scatter_reduce_(1, index, values, reduce=reduce, include_self=True)
    out = out.masked_fill((out_rows < 0).unsqueeze(2), 0.0)
    return out_rows, out


def best(rows: torch.Tensor, scores: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `width` highest-scoring valid rows per user, best first (`-1`, `-inf` past them)."""
    scores = scores.masked_fill(rows < 0, float("-inf"))
    take = min(width, rows.shape[1])
    top, picked = scores.topk(take, dim=1)
    chosen = rows.gather(1, picked).masked_fill(torch.isinf(top) & (top < 0), -1)
    if take < width:
        pad = width - take
        chosen = torch.nn.functional.pad(chosen, (0, pad), value=-1)
        top = torch.nn.functional.pad(top, (0, pad), value=float("-inf"))
    return chosen, top


def member(rows: torch.Tensor, sets: torch.Tensor) -> torch.Tensor:
    """`[users, n]` bool: whether each row is in its user's `sets` row (`-1` pads never match)."""
    if sets.shape[1] == 0:
        return torch.zeros_like(rows, dtype=torch.bool)
    ordered = sets.sort(dim=1).values.contiguous()
    at = torch.searchsorted(ordered, rows.contiguous()).clamp(max=ordered.shape[1] - 1)
    return (ordered.gather(1, at) == rows) & (rows >= 0)
