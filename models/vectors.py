"""Offline vectors in and out: an `.npz` of ids and matrices, e.g. from `implicit`'s ALS.

The file holds `item_ids` (str, n) and `item_vectors` (float, n x d), optionally
`item_bias` (n), and optionally `user_ids` / `user_vectors` (m x d). No pickle: ids are
stored as fixed-width unicode arrays and loaded with `allow_pickle=False`.

A file of another dimension than the model's is refused unless projection is asked for:
then both sides go through the same map (the items' top principal directions when the
file is wider, zero padding when it is narrower), which keeps inner products, and so
rankings, as close as a linear map of that width can.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from models.errors import ModelError

FloatArray = npt.NDArray[np.float32]


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


def _ids(data: np.lib.npyio.NpzFile, name: str) -> list[str]:
    ids = data[name]
    if ids.ndim != 1:
        raise VectorFileError(f"{name}: expected one id per row, got shape {ids.shape}")
    out = [str(i) for i in ids.tolist()]
    if len(set(out)) != len(out) or any(not i for i in out):
        raise VectorFileError(f"{name}: ids must be distinct and non-empty")
    return out


def _matrix(data: np.lib.npyio.NpzFile, name: str, rows: int) -> FloatArray:
    matrix = np.asarray(data[name], dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != rows:  # noqa: PLR2004
        raise VectorFileError(f"{name}: expected {rows} rows of vectors, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise VectorFileError(f"{name}: holds NaN or infinite values")
    return matrix


def load_vectors(path: Path) -> Vectors:
    """Read and validate a vectors file; `VectorFileError` names the bad field."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise VectorFileError(f"{path}: not a readable .npz of arrays ({exc})") from exc
    with data:
        missing = {"item_ids", "item_vectors"} - set(data.files)
        if missing:
            raise VectorFileError(f"{path}: missing {', '.join(sorted(missing))}")
        item_ids = _ids(data, "item_ids")
        items = _matrix(data, "item_vectors", len(item_ids))
        bias = None
        if "item_bias" in data.files:
            bias = np.asarray(data["item_bias"], dtype=np.float32).reshape(-1)
            if bias.shape[0] != len(item_ids) or not np.isfinite(bias).all():
                raise VectorFileError("item_bias: expected one finite value per item")
        user_ids = users = None
        if "user_ids" in data.files or "user_vectors" in data.files:
            user_ids = _ids(data, "user_ids")
            users = _matrix(data, "user_vectors", len(user_ids))
            if users.shape[1] != items.shape[1]:
                raise VectorFileError("user_vectors and item_vectors differ in width")
    return Vectors(item_ids, items, bias, user_ids, users)


def save_vectors(path: Path, vectors: Vectors) -> None:
    """Write `vectors` in the format `load_vectors` reads."""
    arrays: dict[str, npt.NDArray[np.generic]] = {
        "item_ids": np.asarray(vectors.item_ids, dtype=np.str_),
        "item_vectors": vectors.item_vectors.astype(np.float32),
    }
    if vectors.item_bias is not None:
        arrays["item_bias"] = vectors.item_bias.astype(np.float32)
    if vectors.user_ids is not None and vectors.user_vectors is not None:
        arrays["user_ids"] = np.asarray(vectors.user_ids, dtype=np.str_)
        arrays["user_vectors"] = vectors.user_vectors.astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]


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
