"""Vectors files on disk: what is saved loads back, and a bad file is refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.vectors import VectorFileError, Vectors
from worker.storage.vectors_file import load_vectors, save_vectors


def _vectors() -> Vectors:
    rng = np.random.default_rng(0)
    return Vectors(
        ["i0", "i1", "i2"],
        rng.normal(size=(3, 4)).astype(np.float32),
        rng.normal(size=3).astype(np.float32),
        ["u0"],
        rng.normal(size=(1, 4)).astype(np.float32),
    )


def test_round_trip(tmp_path: Path) -> None:
    """What `save_vectors` writes (creating its directory), `load_vectors` reads back unchanged."""
    vectors = _vectors()
    path = tmp_path / "out" / "v.npz"
    save_vectors(path, vectors)
    loaded = load_vectors(path)
    assert loaded.item_ids == vectors.item_ids
    assert loaded.user_ids == vectors.user_ids
    np.testing.assert_array_equal(loaded.item_vectors, vectors.item_vectors)
    assert loaded.item_bias is not None
    assert vectors.item_bias is not None
    np.testing.assert_array_equal(loaded.item_bias, vectors.item_bias)
    assert loaded.user_vectors is not None
    np.testing.assert_array_equal(loaded.user_vectors, vectors.user_vectors)


def test_a_malformed_file_is_refused_naming_it_and_the_field(tmp_path: Path) -> None:
    """An archive without item ids raises `VectorFileError` naming the file and what is missing."""
    path = tmp_path / "bad.npz"
    np.savez(path, item_vectors=np.zeros((2, 3)))
    with pytest.raises(VectorFileError, match=r"bad\.npz: missing item_ids"):
        load_vectors(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not an archive", "not a readable"), (None, "named arrays")],
)
def test_not_an_npz(tmp_path: Path, content: bytes | None, message: str) -> None:
    """Bytes that are no archive, or a bare .npy array, are refused, never unpickled."""
    path = tmp_path / "x.npz"
    if content is None:
        with path.open("wb") as handle:
            np.save(handle, np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(VectorFileError, match=message):
        load_vectors(path)
