"""Bounded rows: caps with bulk least-recently-seen eviction, TTL, occurrence threshold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.idmap import IdMap
from models.pending import PendingCounts
from models.rows import RowKeeper, RowLimits, RowPolicy


def _keeper(max_rows: int, **limits: float) -> RowKeeper:
    return RowKeeper(IdMap(), RowLimits(max_rows, **limits))  # type: ignore[arg-type]


def test_eviction_takes_the_least_recently_seen_rows() -> None:
    """At the cap, the rows freed are those whose last sight is oldest."""
    keeper = _keeper(4, evict_fraction=0.25)
    for t, key in enumerate(["a", "b", "c", "d"]):
        keeper.admit([key], float(t))
    keeper.admit(["a"], 10.0)  # "a" is now the most recent, "b" the oldest
    admitted = keeper.admit(["e"], 11.0)
    assert admitted.evicted.tolist() == [1]  # "b"'s row, freed and given to "e"
    assert admitted.rows.tolist() == [1]
    assert "b" not in keeper.ids
    assert {"a", "c", "d", "e"} <= set(keeper.ids.ids())


def test_eviction_is_in_bulk_and_frees_a_fraction_of_the_cap_at_once() -> None:
    """One new id at a full cap frees evict_fraction of the cap, and the next ones reuse them."""
    keeper = _keeper(100, evict_fraction=0.1)
    keeper.admit([f"u{n}" for n in range(100)], 1.0)
    first = keeper.admit(["new0"], 2.0)
    assert first.evicted.size == 10
    assert len(keeper.ids) == 91
    assert keeper.ids.free_count == 9
    later = keeper.admit([f"new{n}" for n in range(1, 10)], 3.0)
    assert later.evicted.size == 0  # the holes left by the bulk eviction are used first
    assert keeper.ids.free_count == 0
    assert keeper.ids.extent == 100


def test_a_batch_never_evicts_its_own_rows() -> None:
    """Rows of ids in the current batch are protected even when they are the oldest."""
    keeper = _keeper(3, evict_fraction=1.0)
    keeper.admit(["old", "mid", "new"], 1.0)
    admitted = keeper.admit(["old", "x"], 2.0)
    assert "old" in keeper.ids
    assert "x" in keeper.ids
    assert admitted.rows[0] == keeper.ids.row("old")


def test_freed_rows_are_reused_before_the_table_grows() -> None:
    """A new id takes a hole, reported as reused, instead of a row at the end."""
    keeper = _keeper(10, ttl_s=5.0)
    keeper.admit(["a", "b", "c"], 0.0)
    keeper.admit(["c"], 10.0)
    expired = keeper.expire(10.0)
    assert sorted(keeper.ids.ids_of(expired).tolist(), key=str) == [None, None]
    admitted = keeper.admit(["d"], 11.0)
    assert admitted.reused.tolist() == [admitted.rows[0]]
    assert admitted.rows[0] in expired.tolist()
    assert keeper.ids.extent == 3


def test_ttl_frees_only_rows_older_than_the_ttl() -> None:
    """Rows last seen more than ttl_s ago are freed; fresher ones stay."""
    keeper = _keeper(10, ttl_s=100.0)
    keeper.admit(["stale"], 0.0)
    keeper.admit(["fresh"], 50.0)
    keeper.expire(120.0)
    assert "stale" not in keeper.ids
    assert "fresh" in keeper.ids


def test_ttl_zero_never_expires_and_sweeps_are_periodic() -> None:
    """With ttl 0 nothing expires; with a ttl a sweep is due only every tenth of it."""
    keeper = _keeper(10)
    keeper.admit(["a"], 0.0)
    assert keeper.expire(1e9).size == 0
    assert not keeper.expiry_due(1e9)
    timed = _keeper(10, ttl_s=100.0)
    assert timed.expiry_due(0.0)
    timed.expire(0.0)
    assert not timed.expiry_due(5.0)
    assert timed.expiry_due(10.0)


def test_occurrence_threshold_holds_back_rare_ids() -> None:
    """An id gets a row only at its min_occurrences-th sighting, counted across batches."""
    keeper = _keeper(10, min_occurrences=3)
    first = keeper.admit(["a", "b", "a"], 0.0)
    assert first.rows.tolist() == [-1, -1, -1]
    second = keeper.admit(["a", "b"], 1.0)
    assert second.rows[0] >= 0
    assert second.rows[1] == -1
    assert "a" in keeper.ids
    assert "b" not in keeper.ids
    assert dict(keeper.pending.items()) == {"b": 2}


def test_pending_counts_stay_within_capacity() -> None:
    """The pending counter never holds more ids than its capacity and drops the oldest."""
    pending = PendingCounts(capacity=8)
    for n in range(1000):
        pending.add({f"id{n}": 1}, threshold=5)
        assert len(pending) <= 8
    assert "id999" in dict(pending.items())
    assert "id0" not in dict(pending.items())
    assert pending.dropped == 1000 - len(pending)


def test_more_new_ids_than_the_cap_gives_rows_only_to_what_fits() -> None:
    """A batch with more distinct new ids than the cap fills the cap and leaves the rest rowless."""
    keeper = _keeper(5)
    admitted = keeper.admit([f"u{n}" for n in range(8)], 0.0)
    assert (admitted.rows >= 0).sum() == 5
    assert len(keeper.ids) == 5


def test_policy_marks_events_without_a_row_and_counts_evictions_by_cause() -> None:
    """Events whose user or item is held back are not learnable; evictions carry kind and cause."""
    users, items = IdMap(), IdMap()
    user_limits, item_limits = RowLimits(2, ttl_s=10.0), RowLimits(10, min_occurrences=2)
    policy = RowPolicy.over(users, items, user_limits, item_limits)
    batch = policy.admit(["u1", "u2"], ["i1", "i2"], 0.0)
    assert batch.learnable.tolist() == [False, False]  # each item clicked once: no row yet
    later = policy.admit(["u3"], ["i1"], 100.0)
    assert later.learnable.tolist() == [True]  # "i1" gets its row at its second click
    assert later.evictions == {("user", "ttl"): 2}


def test_restored_keeper_evicts_down_to_a_smaller_cap() -> None:
    """A map restored with more live rows than the cap is shrunk, oldest first."""
    ids = IdMap(["a", "b", "c", "d"])
    keeper = RowKeeper(ids, RowLimits(2), last_seen=np.array([4.0, 1.0, 3.0, 2.0]))
    freed = keeper.shrink_to_cap()
    assert sorted(freed.tolist()) == [1, 3]
    assert set(ids.ids()) == {"a", "c", None}


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=20),
        min_size=1,
        max_size=25,
    ),
    cap=st.integers(min_value=1, max_value=12),
    threshold=st.integers(min_value=1, max_value=3),
    ttl=st.sampled_from([0.0, 3.0]),
)
def test_rows_never_exceed_the_cap_and_live_ids_have_distinct_rows(
    batches: list[list[int]], cap: int, threshold: int, ttl: float
) -> None:
    """For any stream of ids, rows in use stay within the cap and map one-to-one to live ids."""
    keeper = _keeper(cap, min_occurrences=threshold, ttl_s=ttl)
    for t, batch in enumerate(batches):
        if keeper.expiry_due(float(t)):
            keeper.expire(float(t))
        keys = [f"id{n}" for n in batch]
        admitted = keeper.admit(keys, float(t))
        assert len(keeper.ids) <= cap
        assert keeper.ids.extent <= cap
        live = [(row, key) for row, key in enumerate(keeper.ids.ids()) if key is not None]
        assert len({row for row, _ in live}) == len(live) == len(keeper.ids)
        assert all(keeper.ids.row(key) == row for row, key in live)
        for key, row in zip(keys, admitted.rows.tolist(), strict=True):
            assert row == -1 or keeper.ids.ids_of(np.array([row]))[0] == key


def test_limits_reject_values_that_cannot_work() -> None:
    """A cap below 1 or a threshold below 1 is refused with the field's name."""
    with pytest.raises(ValueError, match="max_rows"):
        RowLimits(0)
    with pytest.raises(ValueError, match="min_occurrences"):
        RowLimits(5, min_occurrences=0)


def test_last_sight_buffer_grows_by_doubling_but_never_past_the_cap() -> None:
    """A cap of 1,500 rows allocates 1,500 last-sight slots, not the next doubling (2,048)."""
    keeper = _keeper(1500)
    for start in range(0, 1500, 250):
        keeper.admit([f"u{n}" for n in range(start, start + 250)], float(start))
    assert keeper.ids.extent == 1500
    assert len(keeper._last_seen) == 1500
    keeper.admit(["late"], 2000.0)  # past the cap: eviction, no growth
    assert len(keeper._last_seen) == 1500
