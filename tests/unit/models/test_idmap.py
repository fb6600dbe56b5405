"""Unit tests for `models.idmap.IdMap`: dense, stable rows that grow with new ids."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import ModelError
from models.idmap import IdMap


def test_rows_are_dense_and_in_order_of_first_sight() -> None:
    """New ids get the next free rows and known ids keep theirs."""
    ids = IdMap()
    rows = ids.rows_for(["b", "a", "b", "c", "a"])
    assert rows.dtype == np.int64
    assert rows.tolist() == [0, 1, 0, 2, 1]
    assert len(ids) == 3
    assert ids.ids() == ["b", "a", "c"]


def test_rows_are_stable_across_calls() -> None:
    """A row handed out once is returned for that id on every later call."""
    ids = IdMap()
    first = ids.rows_for(["x", "y"]).tolist()
    ids.rows_for([f"new{n}" for n in range(50)])
    assert ids.rows_for(["y", "x"]).tolist() == first[::-1]
    assert ids.row("x") == 0
    assert ids.row("y") == 1
    assert "x" in ids
    assert "zzz" not in ids


def test_growth_past_initial_capacity_keeps_every_id() -> None:
    """Adding more than 1024 ids regrows the object array without losing or moving ids."""
    ids = IdMap()
    names = [f"id{n}" for n in range(3000)]
    for start in range(0, len(names), 700):
        ids.rows_for(names[start : start + 700])
    assert len(ids) == 3000
    assert ids.ids() == names
    assert ids.rows_for(names).tolist() == list(range(3000))
    probe = np.array([0, 1023, 1024, 2047, 2048, 2999])
    assert ids.ids_of(probe).tolist() == [names[n] for n in probe]


def test_ids_of_keeps_the_shape_of_a_two_dimensional_array() -> None:
    """`ids_of` maps every element of a 2-D row array and keeps its shape."""
    ids = IdMap(["a", "b", "c"])
    out = ids.ids_of(np.array([[2, 0], [1, 1], [0, 2]]))
    assert out.shape == (3, 2)
    assert out.tolist() == [["c", "a"], ["b", "b"], ["a", "c"]]


def test_ids_of_empty_array_is_empty() -> None:
    """An empty row array gives an empty id array, even on an empty map."""
    assert IdMap().ids_of(np.array([], dtype=np.int64)).shape == (0,)


@pytest.mark.parametrize("bad", [[-1], [3], [0, 1, 7], [[0], [3]]])
def test_ids_of_out_of_range_raises(bad: list[object]) -> None:
    """A negative row or one past the last raises `ModelError`."""
    ids = IdMap(["a", "b", "c"])
    with pytest.raises(ModelError, match="out of range"):
        ids.ids_of(np.array(bad))


def test_row_of_unknown_id_raises() -> None:
    """`row` of an id never seen raises `ModelError` instead of inventing a row."""
    ids = IdMap(["a"])
    with pytest.raises(ModelError, match="unknown id"):
        ids.row("b")
    assert len(ids) == 1


def test_constructing_from_ids_keeps_their_order() -> None:
    """Ids given to the constructor get rows in the order given, as a checkpoint stores them."""
    names = [f"item-{n}" for n in range(1500, 0, -1)]
    ids = IdMap(names)
    assert len(ids) == 1500
    assert ids.ids() == names
    assert ids.row("item-1500") == 0
    assert ids.row("item-1") == 1499
    assert ids.rows_for(["brand-new"]).tolist() == [1500]
