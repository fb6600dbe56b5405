"""Exact top-k on the GPU without sorting the whole score row.

`torch.topk` over a million columns costs far more than the GEMM that made
them. Split each row into blocks: the blocks holding the k best scores are
among the k blocks with the largest maxima (every top-k score lies in a block
whose maximum is at least the k-th score, and at most k blocks can have one),
so a max-reduction, a top-k over block maxima and a top-k over k·block
gathered scores select exactly. Scores are computed in fp16 (half the bytes
of the largest tensor) for selection with a safety margin, then the chosen
candidates are re-scored in fp32, so the order and values returned are fp32.
"""

from __future__ import annotations

import torch

_BLOCK = 256
_SCORE_BUDGET = 1 << 30  # score elements per query chunk (2 GiB in fp16)
_MARGIN = 16  # extra fp16 candidates re-scored in fp32, against rounding at the boundary


def _select(scores: torch.Tensor, width: int) -> torch.Tensor:
    """Column indices of each row's `width` largest scores (unordered), exactly."""
    rows, cols = scores.shape
    whole = (cols // _BLOCK) * _BLOCK
    blocks = whole // _BLOCK
    if blocks <= width:
        return scores.topk(min(width, cols), dim=1).indices
    # A view, no copy: splitting the contiguous last dimension keeps the row stride.
    block_max = scores[:, :whole].reshape(rows, blocks, _BLOCK).amax(dim=2)
    best_blocks = block_max.topk(width, dim=1).indices
    offsets = torch.arange(_BLOCK, device=scores.device)
    columns = (best_blocks.unsqueeze(2) * _BLOCK + offsets).reshape(rows, -1)
    if whole < cols:  # the ragged tail block is always a candidate
        tail = torch.arange(whole, cols, device=scores.device).expand(rows, -1)
        columns = torch.cat([columns, tail], dim=1)
    picked = scores.gather(1, columns).topk(width, dim=1).indices
    chosen: torch.Tensor = columns.gather(1, picked)
    return chosen


def blocked_knn(
    queries: torch.Tensor, items: torch.Tensor, k: int, margin: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-`k` inner products per query on a CUDA device: fp16 selection, fp32 scores."""
    margin = _MARGIN if margin is None else margin
    width = min(items.shape[0], k + margin)
    half_items = items.half()
    chunk = max(1, _SCORE_BUDGET // max(1, items.shape[0]))
    out_scores, out_rows = [], []
    for start in range(0, queries.shape[0], chunk):
        q = queries[start : start + chunk]
        candidates = _select(q.half() @ half_items.T, width)
        exact = torch.einsum("bd,bkd->bk", q.float(), items[candidates].float())
        top, pick = exact.topk(k, dim=1)
        out_scores.append(top)
        out_rows.append(candidates.gather(1, pick))
    return torch.cat(out_scores), torch.cat(out_rows)
