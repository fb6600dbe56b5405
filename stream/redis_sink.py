"""Redis edge: the list payload contract and one pipelined write per batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgpack
import redis
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream.errors import FatalError, TransientError


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One user's fresh list, as published under `{prefix}{user}`."""

    user: str
    items: list[str]
    scores: list[float]
    event_ts: float


def encode_recommendation(rec: Recommendation, published_ts: float, version: int) -> bytes:
    """The msgpack map downstream apps read (see README, "Redis contract")."""
    packed: bytes = msgpack.packb(
        {
            "items": rec.items,
            "scores": rec.scores,
            "ts": published_ts,
            "event_ts": rec.event_ts,
            "version": version,
        }
    )
    return packed


def decode_recommendation(raw: bytes) -> dict[str, object]:
    """Read a published list back (tests, the demo report, downstream examples)."""
    value: dict[str, object] = msgpack.unpackb(raw, raw=False)
    return value


class RedisSink:
    """Writes lists with `SET key value EX ttl`, a whole batch in one pipeline round trip."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        ttl_s: int,
        password: str | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        """Connect lazily to `url` (`redis://` or `rediss://` for TLS)."""
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._client = redis.Redis.from_url(
            url,
            password=password,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )

    def key(self, user: str) -> str:
        """The Redis key of a user's list."""
        return f"{self.prefix}{user}"

    def publish(self, payloads: Sequence[tuple[str, bytes]]) -> None:
        """Write `(user, payload)` pairs; returns only once Redis acknowledged all of them.

        No MULTI/EXEC: each SET is idempotent and independent, and a
        transaction would only add a round trip and block the server.
        """
        if not payloads:
            return
        pipe = self._client.pipeline(transaction=False)
        for user, payload in payloads:
            pipe.set(self.key(user), payload, ex=self.ttl_s)
        try:
            pipe.execute(raise_on_error=True)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise TransientError(f"redis publish: {exc}") from exc
        except AuthenticationError as exc:
            raise FatalError(f"redis auth: {exc}") from exc
        except ResponseError as exc:
            raise FatalError(f"redis refused a write: {exc}") from exc

    def ping(self) -> bool:
        """Whether Redis answers now (readiness)."""
        try:
            return bool(self._client.ping())
        except (RedisConnectionError, RedisTimeoutError, AuthenticationError):
            return False

    def get(self, user: str) -> dict[str, object] | None:
        """A user's published list, decoded, or None."""
        raw = self._client.get(self.key(user))
        return None if raw is None else decode_recommendation(bytes(raw))  # type: ignore[arg-type]

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
