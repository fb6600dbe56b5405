"""Unit tests for `models.history.SeenHistory`: per-user rings of recent distinct items."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.history import SeenHistory


def _add(history: SeenHistory, pairs: list[tuple[int, int]], ts: list[float] | None = None) -> None:
    """Fold (user, item) clicks in, as tensors on the history's device."""
    device = history.device
    users = torch.tensor([u for u, _ in pairs], dtype=torch.int64, device=device)
    items = torch.tensor([i for _, i in pairs], dtype=torch.int64, device=device)
    stamps = [1.0] * len(pairs) if ts is None else ts
    history.add(users, items, torch.tensor(stamps, dtype=torch.float64, device=device))


def _rows(history: SeenHistory, users: list[int]) -> torch.Tensor:
    """User rows on the history's device."""
    return torch.tensor(users, dtype=torch.int64, device=history.device)


def _held(history: SeenHistory, user: int) -> set[int]:
    row = history.seen(_rows(history, [user]))[0].cpu().tolist()
    return {item for item in row if item >= 0}


def test_length_below_one_is_rejected(device: torch.device) -> None:
    """A history with no slots is refused."""
    with pytest.raises(ValueError, match="length"):
        SeenHistory(0, device)


def test_ring_keeps_the_newest_distinct_items(device: torch.device) -> None:
    """Once full, each new item overwrites the oldest written one."""
    history = SeenHistory(3, device)
    for item in range(6):
        _add(history, [(0, item)])
    assert _held(history, 0) == {3, 4, 5}
    assert history.seen_counts(_rows(history, [0])).cpu().tolist() == [3]


def test_repeats_in_a_batch_take_one_slot_and_a_reclick_takes_a_fresh_one(
    device: torch.device,
) -> None:
    """A repeat within a batch is written once; a later re-click is written again, as newest."""
    history = SeenHistory(4, device)
    _add(history, [(0, 1), (0, 1), (0, 2), (1, 1), (0, 2)])
    assert history.seen_counts(_rows(history, [0, 1])).cpu().tolist() == [2, 1]
    _add(history, [(0, 2), (0, 1), (1, 1)])
    assert history.seen_counts(_rows(history, [0, 1])).cpu().tolist() == [4, 2]
    assert _held(history, 0) == {1, 2}
    _add(history, [(0, 3), (0, 4), (0, 1)])
    assert _held(history, 0) == {1, 3, 4}


def test_a_reclicked_item_outlives_older_clicks(device: torch.device) -> None:
    """Re-clicking an item protects it from eviction by the clicks that follow."""
    history = SeenHistory(3, device)
    for item in (1, 2, 3, 1, 5):
        _add(history, [(0, item)])
    assert _held(history, 0) == {3, 1, 5}


def test_more_new_items_than_slots_in_one_batch_keeps_the_newest(device: torch.device) -> None:
    """A batch with more new items than slots keeps the last `length` of them."""
    history = SeenHistory(3, device)
    _add(history, [(0, 9)])
    _add(history, [(0, item) for item in range(7)] + [(1, 5)])
    assert _held(history, 0) == {4, 5, 6}
    assert _held(history, 1) == {5}
    _add(history, [(0, 7)])
    assert _held(history, 0) == {5, 6, 7}


def test_last_ts_is_the_latest_event_time(device: torch.device) -> None:
    """`last_ts` is each user's maximum event time, whatever the arrival order."""
    history = SeenHistory(4, device)
    _add(history, [(0, 1), (1, 2), (0, 3)], ts=[50.0, 7.0, 20.0])
    _add(history, [(0, 4), (1, 1)], ts=[10.0, 9.5])
    assert history.last_ts[:2].cpu().tolist() == [50.0, 9.5]  # a max: the same value, exactly


def test_seen_width_is_the_fullest_asked_users_count(device: torch.device) -> None:
    """`seen` is as wide as the largest count among the users asked, `-1` padded."""
    history = SeenHistory(8, device)
    _add(history, [(0, 10), (0, 11), (0, 12), (1, 20), (3, 30)])
    history.ensure_users(4)
    assert history.seen(_rows(history, [1])).cpu().tolist() == [[20]]
    assert history.seen(_rows(history, [1, 0])).cpu().tolist() == [[20, -1, -1], [10, 11, 12]]
    assert history.seen(_rows(history, [2])).cpu().tolist() == [[-1]]
    assert history.seen(_rows(history, [])).shape == (0, 8)


def test_seen_counts_clamp_at_length(device: torch.device) -> None:
    """A user who clicked more distinct items than slots reports `length`, not the total."""
    history = SeenHistory(2, device)
    _add(history, [(0, 1), (0, 2), (0, 3)])
    _add(history, [(0, 4), (1, 4)])
    assert history.seen_counts(_rows(history, [0, 1])).cpu().tolist() == [2, 1]
    assert history.seen(_rows(history, [0, 1])).shape == (2, 2)


def test_growth_past_the_first_capacity_keeps_old_users(device: torch.device) -> None:
    """Adding a user row past 1024 reallocates without losing earlier rings or times."""
    history = SeenHistory(2, device)
    _add(history, [(0, 5), (1, 6)], ts=[3.0, 4.0])
    _add(history, [(2000, 7)], ts=[5.0])
    assert history.capacity >= 2001
    assert _held(history, 0) == {5}
    assert _held(history, 1) == {6}
    assert _held(history, 2000) == {7}
    assert history.last_ts[_rows(history, [0, 1, 2000])].cpu().tolist() == [3.0, 4.0, 5.0]


def test_latest_lists_the_last_clicks_newest_first_and_reset_forgets_them(
    device: torch.device,
) -> None:
    """`latest` reads a ring back from its newest slot, `-1` padded; a reset user has none."""
    history = SeenHistory(3, device)
    for item in (1, 2, 3, 4):
        _add(history, [(0, item)])
    _add(history, [(1, 7)], ts=[6.0])
    assert history.latest(_rows(history, [0, 1]), 2).cpu().tolist() == [[4, 3], [7, -1]]
    assert history.latest(_rows(history, [0]), 4).cpu().tolist() == [[4, 3, 2, -1]]
    history.reset(_rows(history, [1]))
    assert history.latest(_rows(history, [1]), 2).cpu().tolist() == [[-1, -1]]
    assert history.seen_counts(_rows(history, [0, 1])).cpu().tolist() == [3, 0]
    assert history.last_ts[1].item() == 0.0
    assert history.slots(_rows(history, [1])).cpu().tolist() == [[-1, -1, -1]]


class _Reference:
    """Pure-Python model of the documented semantics.

    Per batch: distinct (user, item) pairs in order of last appearance, each
    written to the user's next ring slot, overwriting the oldest.
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self.written: dict[int, list[int]] = {}

    def add(self, pairs: list[tuple[int, int]]) -> None:
        last = {pair: n for n, pair in enumerate(pairs)}
        for user, item in sorted(last, key=last.__getitem__):
            self.written.setdefault(user, []).append(item)

    def buffer(self, user: int) -> list[int]:
        return self.written.get(user, [])[-self.length :]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 4), st.integers(0, 11)), min_size=0, max_size=15),
        min_size=1,
        max_size=8,
    )
)
def test_matches_a_reference_model(
    device: torch.device, batches: list[list[tuple[int, int]]]
) -> None:
    """After any batches, every user's ring holds exactly the reference's items, slot by slot."""
    length = 4
    history = SeenHistory(length, device)
    reference = _Reference(length)
    for pairs in batches:
        _add(history, pairs)
        reference.add(pairs)
    history.ensure_users(5)
    counts = history.seen_counts(torch.arange(5, device=device)).cpu().tolist()
    for user in range(5):
        written = reference.written.get(user, [])
        assert counts[user] == min(len(written), length)
        assert _held(history, user) == set(reference.buffer(user))
        ring = history.items[user].cpu().tolist()
        for n in range(max(0, len(written) - length), len(written)):
            assert ring[n % length] == written[n]


def test_an_exported_user_installs_into_another_history_and_carries_on_alike(
    device: torch.device,
) -> None:
    """`export`, then `install` on another row: the same ring, count, time and next slot."""
    old, new = SeenHistory(3, device), SeenHistory(3, device)
    _add(old, [(0, 5), (0, 6), (0, 7), (0, 8)], [1.0, 2.0, 3.0, 4.0])  # wrapped once
    new.ensure_users(3)
    items, written, last_ts = old.export(torch.tensor([0], device=device))
    new.install(torch.tensor([2], device=device), items, written, last_ts)
    assert _held(new, 2) == {6, 7, 8}
    assert new.written[2] == old.written[0] == 4
    assert new.last_ts[2] == 4.0
    _add(old, [(0, 9)])
    _add(new, [(2, 9)])
    assert torch.equal(new.items[2].cpu(), old.items[0].cpu())  # the same slot was overwritten


def test_slots_are_stored_as_int32_and_read_as_int64() -> None:
    """Half the bytes per user row; every read still hands out what gathers index with."""
    history = SeenHistory(8, torch.device("cpu"))
    users = torch.tensor([0, 0, 1])
    history.add(users, torch.tensor([2**31 - 2, 5, 7]), torch.tensor([1.0, 2.0, 3.0]))
    assert history.items.dtype == torch.int32
    rows = torch.tensor([0, 1])
    for read in (history.slots(rows), history.seen(rows), history.latest(rows, 2)):
        assert read.dtype == torch.int64
    assert history.latest(rows, 2).tolist() == [[5, 2**31 - 2], [7, -1]]
    old = history.state_dict() | {"items": history.items.long()}  # an int64 checkpoint
    back = SeenHistory(8, torch.device("cpu"))
    back.load_state_dict(old)
    assert torch.equal(back.slots(rows), history.slots(rows))
