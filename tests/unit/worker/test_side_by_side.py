"""Unit tests for `worker.engine.side_by_side`: a CPU rank's chunks on threads of their own."""

from __future__ import annotations

import threading

import pytest
import torch

from worker.engine.side_by_side import MIN_USERS_PER_THREAD, rank_side_by_side, user_chunks


def test_one_thread_or_few_users_keep_the_serial_chunks() -> None:
    """Threads 1, or too few users for each thread's share: chunks of `chunk`, as before."""
    rows = torch.arange(2500)
    assert [c.numel() for c in user_chunks(rows, 1024, 1)] == [1024, 1024, 452]
    few = torch.arange(2 * MIN_USERS_PER_THREAD - 1)
    assert [c.numel() for c in user_chunks(few, 1024, 2)] == [few.numel()]


def test_shared_chunks_are_even_shares_no_wider_than_a_chunk() -> None:
    """One share per thread (or chunks of `chunk`), every user once, in order."""
    for users, threads, chunk in [(1000, 2, 1024), (11_175, 2, 1024), (700, 3, 100)]:
        rows = torch.arange(users)
        chunks = user_chunks(rows, chunk, threads)
        assert len(chunks) >= threads
        assert max(c.numel() for c in chunks) <= chunk
        assert torch.equal(torch.cat(chunks), rows)
    assert [c.numel() for c in user_chunks(torch.arange(1000), 1024, 2)] == [500, 500]


def test_chunks_run_on_pool_threads_on_one_torch_thread_each() -> None:
    """Results come back in order, each chunk ran on a rank thread, threads are restored."""
    before = torch.get_num_threads()
    seen: list[tuple[str, int]] = []

    def rank(chunk: torch.Tensor) -> int:
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return int(chunk.sum())

    chunks = list(torch.split(torch.arange(40), 5))
    assert rank_side_by_side(rank, chunks, 2) == [int(c.sum()) for c in chunks]
    assert len(seen) == len(chunks)
    assert all(name.startswith("recstream-rank") for name, _ in seen)
    assert all(threads == 1 for _, threads in seen)
    assert torch.get_num_threads() == before


def test_one_thread_ranks_every_chunk_on_the_caller() -> None:
    """`threads` 1: no pool, the caller's thread count untouched."""
    names = []
    chunks = list(torch.split(torch.arange(10), 3))
    rank_side_by_side(lambda _: names.append(threading.current_thread().name), chunks, 1)
    assert set(names) == {threading.current_thread().name}


def test_a_chunk_that_raises_raises_once_every_chunk_has_finished() -> None:
    """The error reaches the caller, and no chunk is still running when it does."""
    finished: list[int] = []

    def rank(chunk: torch.Tensor) -> int:
        if int(chunk[0]) == 5:
            raise ValueError("bad chunk")
        finished.append(int(chunk[0]))
        return 0

    chunks = list(torch.split(torch.arange(40), 5))
    with pytest.raises(ValueError, match="bad chunk"):
        rank_side_by_side(rank, chunks, 2)
    assert sorted(finished) == [0, *range(10, 40, 5)]  # every other chunk ran to its end
