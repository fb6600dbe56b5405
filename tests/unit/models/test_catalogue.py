"""Unit tests for `Catalogue`: hidden items, bans, restores and their checkpoint state."""

from __future__ import annotations

import pytest

from models.catalogue import Catalogue
from models.errors import ModelError, StateError
from models.idmap import IdMap


def test_remove_ban_restore_and_version() -> None:
    """Each change moves the version on; a repeated op changes nothing."""
    catalogue = Catalogue()
    assert catalogue.apply("remove", "a")
    assert not catalogue.apply("remove", "a")
    assert catalogue.apply("ban", "b")
    assert catalogue.version == 2
    assert catalogue.hidden() == {"a": "remove", "b": "ban"}
    assert catalogue.is_banned(["a", "b", "c"]).tolist() == [False, True, False]
    assert catalogue.apply("restore", "b")
    assert not catalogue.apply("restore", "zzz")
    assert catalogue.hidden() == {"a": "remove"}


def test_hidden_rows_only_for_ids_with_a_row() -> None:
    """An id hidden before its first click has no row yet, and gets one masked later."""
    items = IdMap()
    items.assign(["x", "y"])
    catalogue = Catalogue()
    catalogue.apply("remove", "y")
    catalogue.apply("remove", "later")
    assert items.lookup(["y"]).tolist() == catalogue.hidden_rows(items).tolist()
    items.assign(["later"])
    assert sorted(catalogue.hidden_rows(items).tolist()) == sorted(
        items.lookup(["y", "later"]).tolist()
    )


def test_state_round_trip_and_bad_state() -> None:
    """The checkpoint state restores the same hidden ids; a malformed one is refused."""
    catalogue = Catalogue()
    catalogue.apply("ban", "b")
    catalogue.apply("remove", "a")
    restored = Catalogue()
    restored.load_state_dict(catalogue.state_dict())
    assert restored.hidden() == catalogue.hidden()
    with pytest.raises(StateError):
        restored.load_state_dict({"hidden": [["a", "delete"]]})
    with pytest.raises(ModelError, match="unknown catalogue op"):
        restored.apply("delete", "a")
