"""The prequential protocol: each micro-batch is scored on the lists as they stand, then learned.

Every method sees the same batches in the same order and is scored by the same
code, so the numbers differ only by what the methods recommend.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from worker.tools.evaluate.data import BoolArray, IntArray, Stream

K = 10


class SeenItems:
    """Every item each user clicked so far (all of it: peers exclude the full history)."""

    def __init__(self, n_users: int) -> None:
        """One empty set per user code."""
        self._seen: list[set[int]] = [set() for _ in range(n_users)]

    def add(self, users: IntArray, items: IntArray) -> None:
        """Record a batch of clicks."""
        seen = self._seen
        for user, item in zip(users.tolist(), items.tolist(), strict=True):
            seen[user].add(item)

    def count(self, users: IntArray) -> int:
        """The most items any of `users` has seen."""
        return max((len(self._seen[u]) for u in users.tolist()), default=0)

    def mask(self, users: IntArray, n_items: int) -> BoolArray:
        """`(len(users), n_items)`, True where the user has clicked the item."""
        out = np.zeros((users.size, n_items), dtype=bool)
        for row, user in enumerate(users.tolist()):
            items = self._seen[user]
            if items:
                out[row, np.fromiter(items, dtype=np.int64, count=len(items))] = True
        return out


class Method(Protocol):
    """A recommender under evaluation: lists for users, then learn the batch."""

    name: str

    def recommend(self, users: IntArray, seen: SeenItems, k: int) -> IntArray:
        """`(len(users), k)` item codes, best first, `-1` padding; seen items left out."""
        ...

    def learn(self, users: IntArray, items: IntArray, ts: npt.NDArray[np.float64]) -> None:
        """Fold one batch of clicks in."""
        ...


def top_k(scores: npt.NDArray[np.floating], exclude: BoolArray, k: int) -> IntArray:
    """Best `k` columns per row, ties to the lower column; excluded or non-finite cells: -1.

    Which of the cells tied at the `k`-th score are kept is decided here, lowest columns
    first, not by `np.argpartition`: which of them it keeps depends on the CPU's SIMD
    (ml-100k's most-popular long horizon read 0.6614 on an AVX2 machine, 0.6624 on an
    AVX-512 one, from the same counts).
    """
    masked = np.where(exclude | np.isnan(scores), -np.inf, scores)  # NaN: a diverged peer
    rows, cols = masked.shape
    take = min(k, cols)
    if take == 0:
        return np.full((rows, k), -1, dtype=np.int64)
    kth = -np.partition(-masked, take - 1, axis=1)[:, take - 1 : take]  # the k-th best score
    above = masked > kth
    tied = masked == kth
    wanted = take - above.sum(axis=1, keepdims=True)  # tied cells each row still takes
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= wanted))
    part = np.nonzero(chosen)[1].reshape(rows, take)  # `take` a row, columns ascending
    values = np.take_along_axis(masked, part, axis=1)
    order = np.lexsort((part, -values), axis=1)
    best = np.take_along_axis(part, order, axis=1).astype(np.int64)
    best[~np.isfinite(np.take_along_axis(values, order, axis=1))] = -1
    if take < k:
        best = np.pad(best, ((0, 0), (0, k - take)), constant_values=-1)
    return best


def hit_ranks(lists: IntArray, targets: IntArray) -> npt.NDArray[np.int16]:
    """0-based rank of each target in its list, -1 when absent."""
    match = lists == targets[:, None]
    return np.where(match.any(axis=1), match.argmax(axis=1), -1).astype(np.int16)


@dataclass(frozen=True)
class Scores:
    """HR, NDCG and MRR at K over a set of events."""

    events: int
    hr: float
    ndcg: float
    mrr: float


def summarise(ranks: npt.NDArray[np.int16]) -> Scores:
    """HR@K, NDCG@K = 1/log2(rank+2) and MRR@K = 1/(rank+1) on hits, 0 on misses."""
    if ranks.size == 0:
        return Scores(0, float("nan"), float("nan"), float("nan"))
    hit = ranks >= 0
    rank = np.where(hit, ranks, 0).astype(np.float64)
    return Scores(
        events=int(ranks.size),
        hr=float(hit.mean()),
        ndcg=float(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).mean()),
        mrr=float(np.where(hit, 1.0 / (rank + 1.0), 0.0).mean()),
    )


@dataclass(frozen=True)
class Pairs:
    """The long horizon's (checkpoint, user) pairs in order: its checkpoint, its user, a hit."""

    at: IntArray  # the event the checkpoint stands before
    users: IntArray
    hits: BoolArray

    @classmethod
    def none(cls) -> Pairs:
        """No pairs."""
        nothing = np.zeros(0, dtype=np.int64)
        return cls(nothing, nothing, np.zeros(0, dtype=bool))


@dataclass
class Outcome:
    """One method on one stream."""

    method: str
    headline: Scores
    reconsumed: int  # re-consumption events, excluded from the headline
    reconsumed_hits: int  # of those, how many the lists held anyway (seen items are excluded)
    coverage: float  # distinct items ever in a scored list / distinct items in the stream
    seconds: float  # the method's own time: recommend + learn, over the whole stream
    events: int
    windows: list[Scores] = field(default_factory=list)
    long_horizon: float = float("nan")  # HR@K of lists at checkpoints against later clicks
    long_horizon_users: int = 0  # (user, checkpoint) pairs that long_horizon averages
    # per headline event (in stream order) and per (checkpoint, user) pair: whether it was a
    # hit, so two methods' figures on the same stream can be compared event by event
    hits: BoolArray = field(
        default_factory=lambda: np.zeros(0, dtype=bool), repr=False, compare=False
    )
    pairs: Pairs = field(default_factory=Pairs.none, repr=False, compare=False)

    @property
    def events_per_s(self) -> float:
        """Stream events per second of the method's own time."""
        return self.events / self.seconds if self.seconds > 0 else float("inf")


class LongHorizon:
    """Lists taken at checkpoints through the stream, scored against each user's later clicks.

    A list is often read hours after it is written, so the next click is not the
    only horizon that matters: at each checkpoint (every 10 % of the stream by
    default) every user seen so far gets a list, and it is a hit when it names
    any item that user clicks later and had not clicked before the checkpoint.
    """

    def __init__(self, stream: Stream, checkpoints: int) -> None:
        """Checkpoints at each `1 / (checkpoints + 1)` of the stream (scored at batch starts)."""
        n = len(stream)
        self.stream = stream
        self.at = sorted({int(n * c / (checkpoints + 1)) for c in range(1, checkpoints + 1)})
        self._pairs: list[Pairs] = []

    def due(self, start: int, stop: int) -> bool:
        """Whether a checkpoint falls at or after `start` and before `stop` (score before it)."""
        return any(start <= at < stop for at in self.at)

    def score(self, start: int, method: Method, seen: SeenItems, k: int) -> None:
        """Lists of every user clicked so far (before `start`), against their later new items."""
        stream, n_items = self.stream, self.stream.n_items
        before = stream.users[:start]
        users = np.unique(before)
        if users.size == 0:
            return
        lists = method.recommend(users, seen, k)
        past = np.unique(before.astype(np.int64) * n_items + stream.items[:start])
        later = stream.users[start:].astype(np.int64) * n_items + stream.items[start:]
        new = later[~np.isin(later, past)]
        owners = new // n_items
        asked = np.isin(owners, users)
        new, owners = new[asked], owners[asked]
        listed_keys = (users[:, None].astype(np.int64) * n_items + lists)[lists >= 0]
        hit_owners = np.unique(owners[np.isin(new, listed_keys)])
        pair_users = np.unique(owners)
        at = np.full(pair_users.size, start, dtype=np.int64)
        self._pairs.append(Pairs(at, pair_users, np.isin(pair_users, hit_owners)))

    @property
    def pairs(self) -> Pairs:
        """Every pair scored so far, checkpoint by checkpoint, users in code order."""
        if not self._pairs:
            return Pairs.none()
        return Pairs(
            np.concatenate([p.at for p in self._pairs]),
            np.concatenate([p.users for p in self._pairs]),
            np.concatenate([p.hits for p in self._pairs]),
        )

    @property
    def users(self) -> int:
        """(user, checkpoint) pairs with a later new click, so far."""
        return sum(p.users.size for p in self._pairs)

    @property
    def hr(self) -> float:
        """Hits over (user, checkpoint) pairs with a later new click."""
        hits = sum(int(p.hits.sum()) for p in self._pairs)
        return hits / self.users if self.users else float("nan")


def evaluate(
    stream: Stream,
    method: Method,
    batch_size: int,
    *,
    k: int = K,
    windows: int = 20,
    checkpoints: int = 9,
    progress: Callable[[int], object] | None = None,
) -> Outcome:
    """Replay `stream` in micro-batches: score each batch on the current lists, then learn it.

    Also the long horizon (`LongHorizon`) at `checkpoints` points. `progress(n)`, if
    given, is told of each batch's `n` events (a progress bar).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(stream)
    ranks = np.full(n, -1, dtype=np.int16)
    listed = np.zeros(stream.n_items, dtype=bool)
    seen = SeenItems(stream.n_users)
    horizon = LongHorizon(stream, checkpoints)
    spent = 0.0
    for start in range(0, n, batch_size):
        batch = slice(start, min(n, start + batch_size))
        if horizon.due(start, batch.stop):
            horizon.score(start, method, seen, k)
        users, items = stream.users[batch], stream.items[batch]
        distinct, inverse = np.unique(users, return_inverse=True)
        began = time.perf_counter()
        lists = method.recommend(distinct, seen, k)
        spent += time.perf_counter() - began
        listed[lists[lists >= 0]] = True
        ranks[batch] = hit_ranks(lists[inverse], items)
        began = time.perf_counter()
        method.learn(users, items, stream.ts[batch])
        spent += time.perf_counter() - began
        seen.add(users, items)
        if progress is not None:
            progress(batch.stop - batch.start)
    headline = stream.headline
    bounds = np.linspace(0, n, windows + 1).astype(np.int64)
    return Outcome(
        method=method.name,
        headline=summarise(ranks[headline]),
        reconsumed=int(stream.repeat.sum()),
        reconsumed_hits=int((ranks[stream.repeat] >= 0).sum()),
        coverage=float(listed.sum() / max(1, stream.n_items)),
        seconds=spent,
        events=n,
        windows=[summarise(ranks[lo:hi][headline[lo:hi]]) for lo, hi in itertools.pairwise(bounds)],
        long_horizon=horizon.hr,
        long_horizon_users=horizon.users,
        hits=ranks[headline] >= 0,
        pairs=horizon.pairs,
    )
