"""A CPU rank's user chunks side by side, each on one torch thread.

torch splits every op of a chunk over its intra-op threads, and each op then waits
for the slowest of them. Beside a broker and a producer on 2 cores, ranking 11,175
users took 445-1,359 µs a user on two intra-op threads against 203-215 on one, and
123-133 with two chunks at a time on one thread each; with the cores to itself,
118-125 on one thread, 68-74 on two and 67-73 side by side (docs/benchmarks.md,
"2026-12-07, afternoon"). A chunk whose thread loses its core slows only itself.

The first `WARM_USERS` users are ranked alone, on the caller: what the rank builds
lazily once per model state (the shared lists, the item table, the trending peaks,
the successor rings' room) is then built before any two threads could build it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from functools import cache
from typing import TypeVar

import torch

from worker.engine.threads import intra_op_threads

T = TypeVar("T")

WARM_USERS = 64  # ranked first, alone: lazy per-state caches are built before the threads
# Users a thread must get for the batch to be split: a chunk's fixed work is about 400 torch
# calls (some 4 ms on a CPU), more than a smaller share of the users would save.
MIN_USERS_PER_THREAD = 128


def user_chunks(user_rows: torch.Tensor, chunk: int, threads: int) -> list[torch.Tensor]:
    """`user_rows` in chunks of at most `chunk`: for `threads` > 1, warm first, then even shares.

    Serial (`threads` 1, or too few users to share): chunks of `chunk`, as before.
    """
    users = user_rows.numel()
    if threads <= 1 or users < WARM_USERS + threads * MIN_USERS_PER_THREAD:
        return list(torch.split(user_rows, chunk))
    rest = users - WARM_USERS
    share = min(chunk, math.ceil(rest / threads))
    return [user_rows[:WARM_USERS], *torch.split(user_rows[WARM_USERS:], share)]


def rank_side_by_side(
    rank: Callable[[torch.Tensor], T], chunks: list[torch.Tensor], threads: int
) -> list[T]:
    """`rank` of each chunk, in order: the first on the caller, the rest on `threads` threads.

    Each thread runs one intra-op thread (the count is process-wide, set for the
    span and restored); every chunk has finished before this returns or raises.
    One chunk, or `threads` 1: all on the caller, as set.
    """
    if threads <= 1 or len(chunks) <= 1:
        return [rank(chunk) for chunk in chunks]
    with intra_op_threads(1):
        first = rank(chunks[0])
        pending = [_pool(threads).submit(rank, chunk) for chunk in chunks[1:]]
        wait(pending)  # all done, even when one raised: nothing runs on past the rank
        return [first, *(future.result() for future in pending)]


@cache
def _pool(threads: int) -> ThreadPoolExecutor:
    """One pool per thread count for the process's life (a worker uses one)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="recstream-rank")
