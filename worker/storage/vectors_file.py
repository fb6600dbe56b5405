"""Vectors files on disk: the `.npz` that `recstream import-vectors` reads and export writes.

What the arrays must be is `models.vectors`' (`from_arrays`, `to_arrays`); this
module only opens the file. No pickle: ids are fixed-width unicode arrays and
the file is loaded with `allow_pickle=False`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.vectors import VectorFileError, Vectors, from_arrays, to_arrays


def load_vectors(path: Path) -> Vectors:
    """Read and validate a vectors file; `VectorFileError` names the file and the bad field."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise VectorFileError(f"{path}: not a readable .npz of arrays ({exc})") from exc
    if not isinstance(data, np.lib.npyio.NpzFile):  # a bare .npy holds one array, no names
        raise VectorFileError(f"{path}: not a .npz of named arrays")
    with data:
        try:
            return from_arrays({name: data[name] for name in data.files})
        except VectorFileError as exc:
            raise VectorFileError(f"{path}: {exc}") from exc


def save_vectors(path: Path, vectors: Vectors) -> None:
    """Write `vectors` in the format `load_vectors` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        np.savez(handle, **to_arrays(vectors))  # type: ignore[arg-type]
