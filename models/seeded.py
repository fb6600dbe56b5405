"""Initial item rows that depend on the item's id alone, so every worker starts an item alike.

Workers share items by exchanging deltas (`worker.scaleout.item_deltas`): worker B adds
what worker A learned to its own copy of the row. That sums to the same row on
both only if both started it from the same value, whatever order they first
saw their items in. So an item's initial vector is a pure function of (id,
salt, seed): a 64-bit BLAKE2b hash of the id seeds a counter-based generator
(splitmix64, vectorised in numpy) whose outputs become normals (Box-Muller).

>>> a = seeded_normal(["i1", "i2"], 4, salt=1, seed=0)
>>> b = seeded_normal(["i2"], 4, salt=1, seed=0)
>>> bool((a[1] == b[0]).all()), a.shape
(True, (2, 4))
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / float(1 << 53)


def _splitmix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        out: npt.NDArray[np.uint64] = z ^ (z >> np.uint64(31))
        return out


def id_hashes(ids: Sequence[str | None], salt: int, seed: int) -> npt.NDArray[np.uint64]:
    """A stable 64-bit hash per id (None, a hole, hashes like the empty string)."""
    key = f"{salt}:{seed}".encode()
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b((i or "").encode(), digest_size=8, key=key).digest())
            for i in ids
        ),
        dtype=np.uint64,
        count=len(ids),
    )


def seeded_normal(
    ids: Sequence[str | None], width: int, *, salt: int, seed: int
) -> npt.NDArray[np.float32]:
    """Standard normal rows `(len(ids), width)`, each a function of its id, `salt` and `seed`."""
    hashes = id_hashes(ids, salt, seed)
    pairs = (width + 1) // 2
    with np.errstate(over="ignore"):
        counters = hashes[:, None] + np.arange(1, 2 * pairs + 1, dtype=np.uint64)[None, :] * _GOLDEN
    bits = _splitmix(counters) >> np.uint64(11)
    unit = (bits.astype(np.float64) + 0.5) * _TO_UNIT  # in (0, 1): the log below is finite
    u1, u2 = unit[:, 0::2], unit[:, 1::2]
    radius = np.sqrt(-2.0 * np.log(u1))
    normal = np.concatenate(
        [radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)], axis=1
    )
    return normal[:, :width].astype(np.float32)
