"""The app side of the Redis contract: read a user's list, or the cold-start list when none.

Apps in Python import this instead of re-deriving the contract; apps in other
languages read the README's "Redis contract" section, which this module follows.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import msgpack
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream.errors import StreamError, TransientError

DEFAULT_PREFIX = "rec:"
DEFAULT_COLD_START_KEY = "recstream:cold_start"


class BadListError(StreamError):
    """A stored value is not a list in the contract's shape (another writer used the key)."""


@dataclass(frozen=True, slots=True)
class Recommendations:
    """One list as an app reads it: items best first, and where and when it came from."""

    items: list[str]
    scores: list[float]
    published_ts: float  # `ts`: when the worker wrote it
    event_ts: float  # the newest click folded into it
    version: int  # the item index version it was ranked on
    cold_start: bool  # True: the user had no list of their own, this is the fallback

    def age_s(self, now: float | None = None) -> float:
        """Seconds since the list was published (how stale what the user sees is)."""
        return (time.time() if now is None else now) - self.published_ts


def decode_list(raw: bytes, *, cold_start: bool = False) -> Recommendations:
    """Decode and check one stored value; `BadListError` names what is wrong."""
    try:
        value = msgpack.unpackb(raw, raw=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise BadListError(f"not msgpack: {exc}") from exc
    if not isinstance(value, dict):
        raise BadListError(f"expected a map, got {type(value).__name__}")
    items, scores = value.get("items"), value.get("scores")
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise BadListError("`items` must be a list of strings")
    if not isinstance(scores, list) or not all(isinstance(s, (int, float)) for s in scores):
        raise BadListError("`scores` must be a list of numbers")
    if len(items) != len(scores):
        raise BadListError(f"{len(items)} items but {len(scores)} scores")
    times = [value.get(name) for name in ("ts", "event_ts")]
    if not all(isinstance(t, (int, float)) and math.isfinite(t) for t in times):
        raise BadListError("`ts` and `event_ts` must be finite numbers")
    version = value.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BadListError("`version` must be an integer")
    return Recommendations(
        items=items,
        scores=[float(s) for s in scores],
        published_ts=float(times[0]),  # type: ignore[arg-type]
        event_ts=float(times[1]),  # type: ignore[arg-type]
        version=version,
        cold_start=cold_start,
    )


def get_recommendations(
    client: redis.Redis,
    user: str,
    k: int | None = None,
    *,
    prefix: str = DEFAULT_PREFIX,
    cold_start_key: str = DEFAULT_COLD_START_KEY,
) -> Recommendations | None:
    """The user's first `k` items (all when None), else the cold-start list's, else None.

    Both keys are read in one `MGET`, so a user without a list (new, evicted,
    expired) costs no second round trip. Redis unreachable raises
    `TransientError`; a value in the wrong shape raises `BadListError`.
    """
    if k is not None and k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    keys = [f"{prefix}{user}"] + ([cold_start_key] if cold_start_key else [])
    try:
        values = client.mget(keys)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise TransientError(f"redis read: {exc}") from exc
    for raw, cold in zip(values, (False, True), strict=False):
        if isinstance(raw, bytes):  # a client made with decode_responses=True is refused
            rec = decode_list(raw, cold_start=cold)
            if k is None:
                return rec
            return Recommendations(
                rec.items[:k], rec.scores[:k], rec.published_ts, rec.event_ts, rec.version, cold
            )
        if raw is not None:
            raise BadListError("got text, not bytes: make the client without decode_responses")
    return None


def connect(url: str, password: str | None = None, timeout_s: float = 5.0) -> redis.Redis:
    """A client for `url` (`redis://`, `rediss://` or `unix://`), connecting lazily."""
    client: redis.Redis = redis.Redis.from_url(
        url, password=password, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    return client
