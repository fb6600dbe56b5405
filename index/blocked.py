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
# A CPU's blocks are strided (block j: columns j, j + n, j + 2n, ...), so their maxima are an
# elementwise max of `_CPU_BLOCK` contiguous slices, which vectorises; a reduction over a short
# contiguous block does not. Used once a row holds at least `_CPU_MIN_BLOCKS` x k blocks.
_CPU_BLOCK = 16
_CPU_MIN_BLOCKS = 2


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


def top_k_long_rows(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`scores.topk(k, dim=1)` for long rows on a CPU, by strided block maxima, exactly.

    `torch.topk` costs about 3 ns per element on a CPU, whatever `k`: over a
    10^4-item catalogue, more per user than the matrix product that made the row.
    The k best lie in the k blocks with the largest maxima (see the module's
    docstring; any partition of the row serves), so a top-k over the block maxima
    and one over those blocks' `k x 16` scores read a sixth of the elements
    (2026-12-07, 1,024 rows of 10^4: 22 against 33 ms). Ties may pick other
    columns of equal score than `torch.topk` would; the values are the same.
    """
    rows, cols = scores.shape
    if scores.device.type != "cpu" or k < 1 or cols < _CPU_BLOCK * _CPU_MIN_BLOCKS * k:
        return scores.topk(min(k, cols), dim=1)
    blocks = cols // _CPU_BLOCK
    whole = blocks * _CPU_BLOCK
    strided = scores[:, :whole].reshape(rows, _CPU_BLOCK, blocks)
    which = strided.amax(1).topk(k, dim=1, sorted=False).indices  # [rows, k] block numbers
    pool = strided.gather(2, which.unsqueeze(1).expand(-1, _CPU_BLOCK, -1)).view(rows, -1)
    if whole < cols:  # the ragged end (fewer than a block's columns) is always a candidate
        pool = torch.cat([pool, scores[:, whole:]], dim=1)
    top, at = pool.topk(k, dim=1)
    in_blocks = (at // k) * blocks + which.gather(1, (at % k).clamp(max=k - 1))
    pooled = _CPU_BLOCK * k
    return top, torch.where(at < pooled, in_blocks, at - pooled + whole)


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
