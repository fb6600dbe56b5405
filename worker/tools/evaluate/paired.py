"""How far apart two methods are on the same events, and how sure that is.

Every method is scored on the same events and the same user-checkpoint pairs,
so two of them are compared event by event: most events are hits or misses
under both, and the noise of their difference is far below either figure's own.
One user's events are not independent of each other, so their differences are
summed per user before squaring (a cluster-robust variance).
"""

from __future__ import annotations

import math

import numpy as np

from worker.tools.evaluate.data import BoolArray, IntArray


def paired_error(hits: BoolArray, other: BoolArray, users: IntArray) -> float:
    """One standard error of `hits`' rate minus `other`'s (nan: not the same trials, or one user).

    `hits` and `other` are per trial (event or pair), in the same order; `users`
    names each trial's user.
    """
    n = other.size
    if n == 0 or hits.size != n or users.size != n:
        return float("nan")
    difference = hits.astype(np.float64) - other.astype(np.float64)
    _, cluster = np.unique(users, return_inverse=True)
    clusters = int(cluster.max()) + 1
    if clusters == 1:  # no spread to read
        return float("nan")
    sums = np.bincount(cluster, weights=difference - difference.mean(), minlength=clusters)
    return math.sqrt(clusters / (clusters - 1) * float(np.square(sums).sum())) / n
