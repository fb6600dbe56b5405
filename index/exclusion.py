"""Top-k that leaves out what each user has already seen, in one search per batch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from index.base import ItemIndex
from index.blocked import top_k_long_rows
from index.norm_prefix import NormPrefix, pair_scores, unsettled

# Score elements per dense chunk, by device. On a CPU, 4 MiB of floats keeps each pass in
# cache; an accelerator has no such cache to fit and pays per kernel launch instead, so
# its chunks are as large as the index lets a dense matrix be (ExactIndex: 16M elements).
DENSE_CHUNK_BUDGET = 1 << 20
DEVICE_CHUNK_BUDGET = 1 << 24
MIN_DENSE_CHUNK = 16  # fewer users per dense chunk than this: a search costs less


@dataclass(frozen=True)
class TopK:
    """Per-user results: rows `-1` and scores `-inf` where fewer than k items remain.

    `also`: the inner products at the rows a caller asked for beside the top k, read
    off the dense score matrices, or computed per pair for rows outside a norm
    prefix (None when the search made none).
    """

    scores: torch.Tensor
    rows: torch.Tensor
    also: torch.Tensor | None = None

    @property
    def valid(self) -> torch.Tensor:
        """Mask of real entries."""
        return self.rows >= 0


def top_k_excluding(
    index: ItemIndex,
    queries: torch.Tensor,
    seen: torch.Tensor,
    seen_counts: torch.Tensor,
    k: int,
    unavailable: torch.Tensor | None = None,
    *,
    most_widen: int | None = None,
    also: torch.Tensor | None = None,
) -> TopK:
    """Best `k` rows per query, none of them in that query's `seen` row.

    When the index can hand over the whole score matrix cheaply (an exact
    index, a small catalogue), seen items are masked in it by one scatter and
    a single top-k follows; on a CPU, over the items of largest norm first, and
    the whole matrix only for users those leave unsettled (`index.norm_prefix`).
    Otherwise one search fetches `k + max(seen_counts)` candidates for the
    whole batch, so removing seen items still leaves `k`;
    the membership test is a sorted search per row, not a per-user Python
    loop. `unavailable` (a bool per item row) masks items no one may be shown.
    `most_widen` caps that widening for the batch's search, so an approximate
    index's search costs what `k` makes it, whatever the users' histories; the
    users it leaves with fewer than `k` rows are searched again in full.
    `also` (`[queries, m]` rows, each >= 0): where the search is dense, their inner
    products are read off each chunk's score matrix before seen items are masked in
    it, so a caller scoring other rows for the same users needs no gather of vectors.
    """
    if queries.shape[0] == 0:
        empty = torch.empty(0, k, device=queries.device)
        return TopK(empty, empty.long())
    chunk = _dense_chunk(index, queries)
    if chunk:
        top = _norm_pruned_top_k(index, queries, seen, k, unavailable, chunk, also)
        if top is None:
            top = _dense_top_k(index, queries, seen, k, unavailable, chunk, also)
        if top is not None:
            return top
    scores, rows, excluded = _candidates(
        index, queries, seen, seen_counts, k, unavailable, most_widen
    )
    top = _best(scores.masked_fill_(excluded, float("-inf")), rows, k)
    if most_widen is not None:
        # Users the capped search left short (a history longer than the cap, most of it
        # near their query) are searched again, widened in full: a few, not the batch.
        short = (top.valid.sum(1) < k).nonzero().squeeze(1)
        if short.numel():
            again = top_k_excluding(
                index, queries[short], seen[short], seen_counts[short], k, unavailable
            )
            top.scores[short], top.rows[short] = again.scores, again.rows
    return top


def dense_chunk_budget(device: torch.device) -> int:
    """Score elements per dense chunk on `device`: cache-sized on a CPU, launch-bound elsewhere."""
    return DENSE_CHUNK_BUDGET if device.type == "cpu" else DEVICE_CHUNK_BUDGET


def _dense_chunk(index: ItemIndex, queries: torch.Tensor) -> int:
    """How many queries to rank densely at a time (0: search instead).

    A batch too big for one dense score matrix is still cheaper ranked densely
    in chunks than by a widened search (a sort of `[users, k + seen]` rows),
    as long as a chunk holds enough
    users to amortise its passes over the catalogue; else the search it is.
    """
    users = queries.shape[0]
    probe = index.dense_scores(queries[:1])
    if probe is None:  # an index that never hands over a dense matrix
        return 0
    budget = min(
        dense_chunk_budget(queries.device),
        int(getattr(index, "dense_budget", DENSE_CHUNK_BUDGET)),
    )
    chunk = budget // max(1, probe.shape[1])
    return min(chunk, users) if chunk >= MIN_DENSE_CHUNK else users


def _dense_top_k(
    index: ItemIndex,
    queries: torch.Tensor,
    seen: torch.Tensor,
    k: int,
    unavailable: torch.Tensor | None,
    chunk: int,
    also: torch.Tensor | None = None,
) -> TopK | None:
    """Top-k over dense score matrices, `chunk` users at a time (None: no dense matrix).

    Per chunk: one matrix product, seen and unavailable items set to -inf in
    place (a scatter by the seen rows, no `[users, items]` mask, no shape that
    depends on the data, so nothing waits on a device), one top-k.
    """
    users = queries.shape[0]
    tops, picks, extra = [], [], []
    for at in range(0, users, chunk):
        stop = min(users, at + chunk)
        scores = index.dense_scores(queries[at:stop])
        if scores is None:  # only the first chunk can be refused: they all fit the budget
            return None
        if also is not None:
            extra.append(scores.gather(1, also[at:stop].to(scores.device)))
        _mask_seen(scores, seen[at:stop].to(scores.device))
        if unavailable is not None:
            scores.masked_fill_(unavailable[: scores.shape[1]].to(scores.device), float("-inf"))
        top, pick = top_k_long_rows(scores, min(k, scores.shape[1]))
        tops.append(top)
        picks.append(pick)
    top = torch.cat(tops) if len(tops) > 1 else tops[0]
    pick = torch.cat(picks) if len(picks) > 1 else picks[0]
    padded = _padded(top, pick.masked_fill_(torch.isinf(top) & (top < 0), -1), k)
    return dataclasses.replace(padded, also=torch.cat(extra)) if extra else padded


def _norm_pruned_top_k(
    index: ItemIndex,
    queries: torch.Tensor,
    seen: torch.Tensor,
    k: int,
    unavailable: torch.Tensor | None,
    chunk: int,
    also: torch.Tensor | None,
) -> TopK | None:
    """`_dense_top_k` over the items of largest norm first (`index.norm_prefix`).

    Users the prefix leaves unsettled get the whole catalogue, as before. None
    where the index offers no prefix (a GPU, a small catalogue, another index).
    """
    take = getattr(index, "norm_prefix", None)
    prefix: NormPrefix | None = take(k) if take is not None else None
    if prefix is None:
        return None
    size = prefix.rows.shape[0]
    step = max(1, DENSE_CHUNK_BUDGET // size)
    parts = [
        _prefix_top_k(
            prefix,
            queries[at : at + step],
            seen[at : at + step],
            k,
            unavailable,
            None if also is None else also[at : at + step],
        )
        for at in range(0, queries.shape[0], step)
    ]
    top = (
        parts[0]
        if len(parts) == 1
        else TopK(
            torch.cat([p.scores for p in parts]),
            torch.cat([p.rows for p in parts]),
            None if also is None else torch.cat([p.also for p in parts if p.also is not None]),
        )
    )
    again = unsettled(queries, top.scores[:, k - 1], prefix.bound).nonzero().squeeze(1)
    prefix.note(again.numel(), queries.shape[0])
    if again.numel():  # the few whose k best may lie outside: the whole catalogue, as before
        full = _dense_top_k(index, queries[again], seen[again], k, unavailable, chunk)
        if full is None:
            return None
        top.scores[again], top.rows[again] = full.scores, full.rows
    return top


def _prefix_top_k(
    prefix: NormPrefix,
    queries: torch.Tensor,
    seen: torch.Tensor,
    k: int,
    unavailable: torch.Tensor | None,
    also: torch.Tensor | None,
) -> TopK:
    """The k best of the prefix per user (padded to k), and `also`'s inner products."""
    queries = queries.float()
    scores = queries @ prefix.vectors.T
    items = prefix.position.shape[0]
    extra = None
    if also is not None:
        at = prefix.position[also]
        extra = scores.gather(1, at.clamp(min=0))
        outside = (at < 0).view(-1).nonzero().squeeze(1)
        if outside.numel():  # a neighbour beyond the prefix: its inner product alone
            users = outside.div(also.shape[1], rounding_mode="floor")
            rows = also.reshape(-1).index_select(0, outside)
            extra.view(-1)[outside] = pair_scores(queries, prefix.items, users, rows)
    seen = seen.to(scores.device)
    held = (seen >= 0) & (seen < items)
    _mask_seen(scores, prefix.position[seen.clamp(min=0, max=items - 1)].masked_fill(~held, -1))
    if unavailable is not None:  # one flag per item row, as the dense path reads it
        scores.masked_fill_(unavailable[prefix.rows], float("-inf"))
    top, pick = scores.topk(k, dim=1)
    rows = prefix.rows[pick].masked_fill_(torch.isneginf(top), -1)
    return TopK(top, rows, extra)


def _mask_seen(scores: torch.Tensor, seen: torch.Tensor) -> None:
    """Set each user's seen columns of `scores` to -inf, in place (`-1` pads skipped).

    Pads are pointed at column 0, whose own value is put back unless it was seen.
    """
    items = scores.shape[1]
    if seen.shape[1] == 0 or items == 0:
        return
    held = (seen >= 0) & (seen < items)
    first = scores[:, 0].clone()
    scores.scatter_(1, torch.where(held, seen, 0), float("-inf"))
    first_seen = (held & (seen == 0)).any(1)
    scores[:, 0] = first.masked_fill_(first_seen, float("-inf"))


def _candidates(
    index: ItemIndex,
    queries: torch.Tensor,
    seen: torch.Tensor,
    seen_counts: torch.Tensor,
    k: int,
    unavailable: torch.Tensor | None,
    most_widen: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(inner products, rows, excluded)` over each query's candidates.

    The whole catalogue when the index hands over a dense matrix; otherwise
    the search's `k + max(seen_counts) (+ unavailable)` best.
    """
    dense = index.dense_scores(queries)
    if dense is not None:
        excluded = _excluded(dense.shape, seen.to(dense.device), unavailable)
        rows = torch.arange(dense.shape[1], device=dense.device).expand(dense.shape[0], -1)
        return dense, rows, excluded
    widen = int(seen_counts.max()) if seen_counts.numel() else 0
    if unavailable is not None:
        widen += int(unavailable.sum())
    if most_widen is not None:
        widen = min(widen, most_widen)
    scores, rows = index.search(queries, k + widen)
    sorted_seen = seen.sort(dim=1).values.to(rows.device)
    slot = torch.searchsorted(sorted_seen, rows.contiguous()).clamp(max=sorted_seen.shape[1] - 1)
    excluded = (sorted_seen.gather(1, slot) == rows) | (rows < 0) | (scores == float("-inf"))
    if unavailable is not None:
        excluded |= unavailable[rows.clamp(min=0)]
    return scores, rows, excluded


def _excluded(
    shape: torch.Size, seen: torch.Tensor, unavailable: torch.Tensor | None
) -> torch.Tensor:
    """The `[users, items]` mask of seen (and unavailable) items."""
    items = shape[1]
    # Column `items` is a sink for the -1 padding of `seen`, dropped after the scatter.
    excluded = torch.zeros(shape[0], items + 1, dtype=torch.bool, device=seen.device)
    excluded.scatter_(1, seen.masked_fill(seen < 0, items), value=True)
    excluded = excluded[:, :items]
    if unavailable is not None:
        excluded |= unavailable[:items].to(seen.device)
    return excluded


def _best(scores: torch.Tensor, rows: torch.Tensor, k: int) -> TopK:
    """Top `k` of masked candidate scores, padded with -1/-inf where fewer remain."""
    width = min(k, int(scores.shape[1]))
    top, pick = scores.topk(width, dim=1)
    picked = rows.gather(1, pick).masked_fill(torch.isinf(top) & (top < 0), -1)
    return _padded(top, picked, k)


def _padded(top: torch.Tensor, picked: torch.Tensor, k: int) -> TopK:
    """`(scores, rows)` widened to `k` columns with -inf/-1 where fewer than k remain."""
    width = top.shape[1]
    if width < k:
        batch, pad = top.shape[0], k - width
        top = torch.cat([top, top.new_full((batch, pad), float("-inf"))], dim=1)
        picked = torch.cat([picked, picked.new_full((batch, pad), -1)], dim=1)
    return TopK(top, picked)
