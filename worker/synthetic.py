"""A synthetic click stream with real structure, so the demo's lists mean something.

Items belong to genres and have Zipf popularity inside their genre; each user
has a taste (a Dirichlet mix concentrated on a couple of genres) and clicks
items from the genres they like. A good learner puts a user's favourite genres
at the top of their list; a random one would match at the genres' base rate.

With `drift_at`, every user's taste is redrawn at that fraction of the stream:
their favourite genres change, so a learner that follows the stream recovers
and a model fitted once (or rarely) on the past lags behind.
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
