"""Offline vectors as named arrays: round trip, validation, dimension fitting (no file)."""

from __future__ import annotations

import numpy as np
import pytest

from models.vectors import VectorFileError, Vectors, fit_dimension, from_arrays, to_arrays


def _vectors(n_items: int = 30, n_users: int = 5, dim: int = 8) -> Vectors:
    rng = np.random.default_rng(0)
    return Vectors(
        [f"i{n}" for n in range(n_items)],
        rng.normal(size=(n_items, dim)).astype(np.float32),
        rng.normal(size=n_items).astype(np.float32),
        [f"u{n}" for n in range(n_users)],
        rng.normal(size=(n_users, dim)).astype(np.float32),
    )


def test_round_trip() -> None:
    """What `to_arrays` gives, `from_arrays` takes back unchanged, ids as unicode, not objects."""
    vectors = _vectors()
    arrays = to_arrays(vectors)
    assert arrays["item_ids"].dtype.kind == "U"
    loaded = from_arrays(arrays)
    assert loaded.item_ids == vectors.item_ids
    assert loaded.user_ids == vectors.user_ids
    np.testing.assert_array_equal(loaded.item_vectors, vectors.item_vectors)
    assert loaded.user_vectors is not None
    np.testing.assert_array_equal(loaded.user_vectors, vectors.user_vectors)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"item_vectors": np.zeros((2, 3))}, "missing item_ids"),
        ({"item_ids": np.array(["a", "a"]), "item_vectors": np.zeros((2, 3))}, "distinct"),
        ({"item_ids": np.array(["a", "b"]), "item_vectors": np.zeros((3, 3))}, "2 rows"),
        ({"item_ids": np.array(["a"]), "item_vectors": np.array([[np.nan]])}, "NaN"),
        (
            {
                "item_ids": np.array(["a"]),
                "item_vectors": np.zeros((1, 3)),
                "user_ids": np.array(["u"]),
                "user_vectors": np.zeros((1, 2)),
            },
            "differ in width",
        ),
    ],
)
def test_bad_arrays_say_what_is_wrong(arrays: dict[str, np.ndarray], message: str) -> None:
    """Each malformed set of arrays raises `VectorFileError` naming the problem."""
    with pytest.raises(VectorFileError, match=message):
        from_arrays(arrays)


def test_dimension_mismatch_refused_without_projection() -> None:
    """A width other than the model's names RECSTREAM_DIM unless projection is asked for."""
    with pytest.raises(VectorFileError, match="RECSTREAM_DIM"):
        fit_dimension(_vectors(dim=8), 4, project=False)


def test_projection_keeps_inner_products_in_the_kept_subspace() -> None:
    """Narrowing keeps the scores of low-rank vectors; widening keeps them exactly."""
    rng = np.random.default_rng(1)
    low_rank = rng.normal(size=(40, 3)) @ rng.normal(size=(3, 8))
    users = rng.normal(size=(6, 3)) @ rng.normal(size=(3, 8))
    vectors = Vectors(
        [f"i{n}" for n in range(40)],
        low_rank.astype(np.float32),
        None,
        [f"u{n}" for n in range(6)],
        users.astype(np.float32),
    )
    for dim in (4, 12):
        fitted = fit_dimension(vectors, dim, project=True)
        assert fitted.dim == dim
        assert fitted.user_vectors is not None
        before = vectors.user_vectors @ vectors.item_vectors.T  # type: ignore[operator]
        after = fitted.user_vectors @ fitted.item_vectors.T
        np.testing.assert_allclose(after, before, rtol=1e-3, atol=1e-3)
