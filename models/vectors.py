"""Offline vectors in and out, as named arrays, e.g. from `implicit`'s ALS (no file I/O).

A vectors file holds `item_ids` (str, n) and `item_vectors` (float, n x d), optionally
`item_bias` (n), and optionally `user_ids` / `user_vectors` (m x d). `from_arrays`
checks them and `to_arrays` gives them back; the `.npz` file itself is the worker's
(`worker.storage.vectors_file`), read without pickle.

A file of another dimension than the model's is refused unless projection is asked for:
then both sides go through the same map (the items' top principal directions when the
file is wider, zero padding when it is narrower), which keeps inner products, and so
rankings, as close as a linear map of that width can.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.errors import ModelError

FloatArray = npt.NDArray[np.float32]
Arrays = Mapping[str, npt.NDArray[np.generic]]  # a file's arrays by name


class VectorFileError(ModelError):
    """A vectors file that cannot be used as it is; the message says what is wrong."""


@dataclass(frozen=True)
class Vectors:
    """Ids and their vectors, items always, users when the file has them."""

    item_ids: list[str]
    item_vectors: FloatArray
    item_bias: FloatArray | None = None
    user_ids: list[str] | None = None
    user_vectors: FloatArray | None = None

    @property
    def dim(self) -> int:
        """The vectors' width."""
        return int(self.item_vectors.shape[1])


def _ids(arrays: Arrays, name: str) -> list[str]:
    ids = arrays[name]
    if ids.ndim != 1:
        raise VectorFileError(f"{name}: expected one id per row, got shape {ids.shape}")
    out = [str(i) for i in ids.tolist()]
    if len(set(out)) != len(out) or any(not i for i in out):
        raise VectorFileError(f"{name}: ids must be distinct and non-empty")
    return out


def _matrix(arrays: Arrays, name: str, rows: int) -> FloatArray:
    matrix = np.asarray(arrays[name], dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != rows:  # noqa: PLR2004
        raise VectorFileError(f"{name}: expected {rows} rows of vectors, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise VectorFileError(f"{name}: holds NaN or infinite values")
    return matrix


def from_arrays(arrays: Arrays) -> Vectors:
    """Validate the named arrays of a vectors file; `VectorFileError` names the bad field."""
    missing = {"item_ids", "item_vectors"} - set(arrays)
    if missing:
        raise VectorFileError(f"missing {', '.join(sorted(missing))}")
    item_ids = _ids(arrays, "item_ids")
    items = _matrix(arrays, "item_vectors", len(item_ids))
    bias = None
    if "item_bias" in arrays:
        bias = np.asarray(arrays["item_bias"], dtype=np.float32).reshape(-1)
        if bias.shape[0] != len(item_ids) or not np.isfinite(bias).all():
            raise VectorFileError("item_bias: expected one finite value per item")
    user_ids = users = None
    if "user_ids" in arrays or "user_vectors" in arrays:
        user_ids = _ids(arrays, "user_ids")
        users = _matrix(arrays, "user_vectors", len(user_ids))
        if users.shape[1] != items.shape[1]:
            raise VectorFileError("user_vectors and item_vectors differ in width")
    return Vectors(item_ids, items, bias, user_ids, users)


def to_arrays(vectors: Vectors) -> dict[str, npt.NDArray[np.generic]]:
    """The named arrays `from_arrays` reads back (ids as fixed-width unicode: no pickle)."""
    arrays: dict[str, npt.NDArray[np.generic]] = {
        "item_ids": np.asarray(vectors.item_ids, dtype=np.str_),
        "item_vectors": vectors.item_vectors.astype(np.float32),
    }
    if vectors.item_bias is not None:
        arrays["item_bias"] = vectors.item_bias.astype(np.float32)
    if vectors.user_ids is not None and vectors.user_vectors is not None:
        arrays["user_ids"] = np.asarray(vectors.user_ids, dtype=np.str_)
        arrays["user_vectors"] = vectors.user_vectors.astype(np.float32)
    return arrays


def fit_dimension(vectors: Vectors, dim: int, *, project: bool) -> Vectors:
    """`vectors` at width `dim`: as they are, projected, or `VectorFileError`."""
    if vectors.dim == dim:
        return vectors
    if not project:
        raise VectorFileError(
            f"the file's vectors are {vectors.dim} wide and the model's RECSTREAM_DIM is {dim}: "
            "set RECSTREAM_DIM to match, or project (--project)"
        )
    if vectors.dim < dim:
        basis = np.eye(vectors.dim, dim, dtype=np.float32)  # zero padding, as a matrix
    else:
        # The items' top `dim` right singular vectors: the subspace holding most of their energy.
        _, _, vt = np.linalg.svd(vectors.item_vectors.astype(np.float64), full_matrices=False)
        basis = vt[:dim].T.astype(np.float32)  # d x dim, orthonormal columns
    return Vectors(
        vectors.item_ids,
        vectors.item_vectors @ basis,
        vectors.item_bias,
        vectors.user_ids,
        None if vectors.user_vectors is None else vectors.user_vectors @ basis,
    )
