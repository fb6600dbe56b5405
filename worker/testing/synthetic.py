"""A synthetic click stream with real structure, so the demo's lists mean something.

Items belong to genres and have Zipf popularity inside their genre; each user
has a taste (a Dirichlet mix concentrated on a couple of genres) and clicks
items from the genres they like. A good learner puts a user's favourite genres
at the top of their list; a random one would match at the genres' base rate.

With `drift_at`, every user's taste is redrawn at that fraction of the stream:
their favourite genres change, so a learner that follows the stream recovers
and a model fitted once (or rarely) on the past lags behind.

`generate_clustered` is a sharper variant: each user likes only 1 to 3 of the
item clusters, a fraction of the clicks explore (drawn from overall item
popularity), and at the drift every user moves to clusters they never liked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class SyntheticStream:
    """Parallel arrays of events plus the planted truth to score lists against."""

    users: npt.NDArray[np.int64]
    items: npt.NDArray[np.int64]
    ts: npt.NDArray[np.float64]
    item_genre: npt.NDArray[np.int64]
    user_taste: npt.NDArray[np.float64]  # (users, genres), rows sum to 1
    user_taste_after: npt.NDArray[np.float64] | None = None  # the taste after the drift
    drift_index: int | None = None  # first event drawn from `user_taste_after`

    def favourite_genres(self, user: int, top: int = 2) -> set[int]:
        """The `top` genres a user clicks most, by construction."""
        return {int(g) for g in np.argsort(-self.user_taste[user])[:top]}


def generate(
    events: int,
    *,
    users: int = 5_000,
    items: int = 2_000,
    genres: int = 20,
    seed: int = 7,
    start_ts: float = 1_700_000_000.0,
    drift_at: float | None = None,
) -> SyntheticStream:
    """Draw `events` clicks, vectorised; timestamps one millisecond apart.

    `drift_at` (a fraction in (0, 1)) redraws every user's taste from that point on.
    Without it the stream is the one the same seed always gave.
    """
    rng = np.random.default_rng(seed)
    item_genre = rng.integers(0, genres, size=items)
    taste = rng.dirichlet(np.full(genres, 0.15), size=users)
    activity = 1.0 / np.arange(1, users + 1) ** 0.6
    activity /= activity.sum()
    event_users = rng.choice(users, size=events, p=activity)
    # A genre per event from the user's taste (inverse CDF on each user's row).
    draws = rng.random(events)
    event_genres = _draw_genres(np.cumsum(taste, axis=1), event_users, draws)
    taste_after, drift_index = None, None
    if drift_at is not None:
        if not 0 < drift_at < 1:
            raise ValueError(f"drift_at must be in (0, 1), got {drift_at}")
        # A separate generator: the events before the drift keep the undrifted stream's genres.
        taste_after = np.random.default_rng([seed, 1]).dirichlet(np.full(genres, 0.15), size=users)
        drift_index = int(events * drift_at)
        after = slice(drift_index, events)
        event_genres[after] = _draw_genres(
            np.cumsum(taste_after, axis=1), event_users[after], draws[after]
        )
    # An item per event: Zipf popularity inside the genre.
    event_items = np.empty(events, dtype=np.int64)
    for genre in range(genres):
        members = np.flatnonzero(item_genre == genre)
        where = np.flatnonzero(event_genres == genre)
        if members.size == 0 or where.size == 0:
            fallback = rng.integers(0, items, size=where.size)
            event_items[where] = fallback
            continue
        weights = 1.0 / np.arange(1, members.size + 1) ** 0.8
        event_items[where] = rng.choice(members, size=where.size, p=weights / weights.sum())
    ts = start_ts + np.arange(events, dtype=np.float64) / 1000.0
    return SyntheticStream(
        event_users.astype(np.int64), event_items, ts, item_genre, taste, taste_after, drift_index
    )


def generate_clustered(
    events: int,
    *,
    users: int = 2_000,
    items: int = 2_000,
    clusters: int = 20,
    explore: float = 0.1,
    zipf: float = 1.0,
    seed: int = 11,
    start_ts: float = 1_700_000_000.0,
    drift_at: float | None = 0.5,
) -> SyntheticStream:
    """Draw `events` clicks of users whose tastes sit on 1-3 item clusters, vectorised.

    Items are dealt evenly into `clusters` with Zipf(`zipf`) popularity inside
    each; a user likes 1, 2 or 3 clusters (a flat Dirichlet mix over them);
    `explore` of the clicks ignore taste and follow overall item popularity.
    From `drift_at` on, every user likes as many clusters again, none of them
    liked before. `item_genre` holds each item's cluster.
    """
    if not 0 <= explore <= 1:
        raise ValueError(f"explore must be in [0, 1], got {explore}")
    if drift_at is not None and not 0 < drift_at < 1:
        raise ValueError(f"drift_at must be in (0, 1), got {drift_at}")
    if clusters < 6 or items < clusters:  # noqa: PLR2004 (3 liked before and 3 after)
        raise ValueError(f"need clusters >= 6 and items >= clusters, got {clusters}, {items}")
    rng = np.random.default_rng(seed)
    item_cluster = rng.permutation(items) % clusters
    # Zipf inside a cluster, in a random order of its members.
    weight = np.empty(items)
    for cluster in range(clusters):
        members = rng.permutation(np.flatnonzero(item_cluster == cluster))
        weight[members] = 1.0 / np.arange(1, members.size + 1) ** zipf
    liked = rng.integers(1, 4, size=users)
    # A random ranking of the clusters per user: the first `liked` before, the next after.
    ranking = np.argsort(rng.random((users, clusters)), axis=1)
    taste = _taste(ranking[:, :3], liked, clusters, rng)
    activity = 1.0 / np.arange(1, users + 1) ** 0.6
    event_users = rng.choice(users, size=events, p=activity / activity.sum())
    event_clusters = _draw_genres(np.cumsum(taste, axis=1), event_users, rng.random(events))
    # An item per event by inverse CDF: a click's item depends only on its cluster and draws,
    # so the events before the drift are exactly the undrifted stream's.
    pick, exploring, explore_pick = (
        rng.random(events),
        rng.random(events) < explore,
        rng.random(events),
    )
    taste_after, drift_index = None, None
    if drift_at is not None:
        after_rng = np.random.default_rng([seed, 1])
        taste_after = _taste(ranking[:, 3:6], liked, clusters, after_rng)
        drift_index = int(events * drift_at)
        after = slice(drift_index, events)
        event_clusters[after] = _draw_genres(
            np.cumsum(taste_after, axis=1),
            event_users[after],
            after_rng.random(events - drift_index),
        )
    event_items = np.empty(events, dtype=np.int64)
    for cluster in range(clusters):
        members = np.flatnonzero(item_cluster == cluster)
        where = event_clusters == cluster
        event_items[where] = members[_inverse_cdf(weight[members], pick[where])]
    event_items[exploring] = _inverse_cdf(weight, explore_pick[exploring])
    ts = start_ts + np.arange(events, dtype=np.float64) / 1000.0
    return SyntheticStream(
        event_users.astype(np.int64),
        event_items,
        ts,
        item_cluster.astype(np.int64),
        taste,
        taste_after,
        drift_index,
    )


def _inverse_cdf(
    weight: npt.NDArray[np.float64], draws: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """Indices into `weight` drawn with probability proportional to it, one per uniform draw."""
    cdf = np.cumsum(weight)
    found = np.searchsorted(cdf / cdf[-1], draws, side="right")
    return np.minimum(found, weight.size - 1).astype(np.int64)


def _taste(
    choices: npt.NDArray[np.int64],
    liked: npt.NDArray[np.int64],
    clusters: int,
    rng: np.random.Generator,
) -> npt.NDArray[np.float64]:
    """(users, clusters) rows: a flat Dirichlet mix over each user's first `liked` choices."""
    users = liked.size
    mix = rng.dirichlet(np.ones(choices.shape[1]), size=users)
    mix[np.arange(choices.shape[1]) >= liked[:, None]] = 0.0
    taste = np.zeros((users, clusters))
    np.put_along_axis(taste, choices, mix / mix.sum(axis=1, keepdims=True), axis=1)
    return taste


def _draw_genres(
    cdf: npt.NDArray[np.float64], users: npt.NDArray[np.int64], draws: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """Inverse-CDF genre draws, in chunks so a million events need no gigabyte of temporaries."""
    out = np.empty(users.size, dtype=np.int64)
    chunk = 100_000
    for start in range(0, users.size, chunk):
        stop = start + chunk
        below = draws[start:stop, None] > cdf[users[start:stop]]
        out[start:stop] = np.minimum(below.sum(axis=1), cdf.shape[1] - 1)
    return out


MALFORMED: tuple[bytes, ...] = (
    b"",
    b"\xff\xfe\x00garbage",
    b'{"user": "u1", "item": ',
    b'{"item": "i1"}',
    b'{"user": "u1", "item": "i1", "weight": NaN}',
    b'{"user": "' + b"x" * 200 + b'", "item": "i1"}',
    b'{"user": true, "item": "i1"}',
    b"\x93\x01\x02\x03",  # a msgpack array, not a map
)
