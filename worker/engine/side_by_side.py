"""A CPU rank's user chunks side by side, each on one torch thread.

torch splits every op of a chunk over its intra-op threads, and each op then waits
for the slowest of them: beside a broker and a producer on the same cores, one of
them is often descheduled, and a rank on two threads split op by op ran several
times slower than on one (docs/benchmarks.md, "2026-12-07, afternoon"). Chunks of
users on threads of their own lose nothing with the cores to themselves, and a
chunk whose core a neighbour takes slows only itself.

What the rank builds lazily once per model state is built by the caller first
(`TwoStage._prepare_side_by_side`), so the threads only read what they share.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from functools import cache
from typing import TypeVar

import faiss
import torch

from worker.engine.threads import intra_op_threads

T = TypeVar("T")

# Users a thread must get for the batch to be split: a chunk's fixed work is about 400 torch
# calls (some 4 ms on a CPU), more than a smaller share of the users would save.
MIN_USERS_PER_THREAD = 128


def user_chunks(user_rows: torch.Tensor, chunk: int, threads: int) -> list[torch.Tensor]:
    """`user_rows` in chunks of at most `chunk`: for `threads` > 1, an even share each.

    Serial (`threads` 1, or too few users to share): chunks of `chunk`, as before.
    """
    users = user_rows.numel()
    if threads <= 1 or users < threads * MIN_USERS_PER_THREAD:
        return list(torch.split(user_rows, chunk))
    return list(torch.split(user_rows, min(chunk, math.ceil(users / threads))))


def rank_side_by_side(
    rank: Callable[[torch.Tensor], T], chunks: list[torch.Tensor], threads: int
) -> list[T]:
    """`rank` of each chunk, in order, on `threads` threads of one torch thread each.

    The intra-op count is process-wide: it is 1 for the span and restored after;
    every chunk has finished before this returns or raises. One chunk, or `threads`
    1: all on the caller, as set.
    """
    if threads <= 1 or len(chunks) <= 1:
        return [rank(chunk) for chunk in chunks]
    with intra_op_threads(1):
        pending = [_pool(threads).submit(rank, chunk) for chunk in chunks]
        wait(pending)  # all done, even when one raised: nothing runs on past the rank
        return [future.result() for future in pending]


def _one_faiss_thread() -> None:
    """A FAISS search on a rank thread runs on that thread (OpenMP's count is per thread)."""
    faiss.omp_set_num_threads(1)


@cache
def _pool(threads: int) -> ThreadPoolExecutor:
    """One pool per thread count for the process's life (a worker uses one)."""
    return ThreadPoolExecutor(
        threads, thread_name_prefix="recstream-rank", initializer=_one_faiss_thread
    )
