"""Redis Cluster edge: the same lists, each key routed to the node that owns its slot.

Every write is a single-key `SET ... EX`, so nothing needs two slots at once:
redis-py's cluster pipeline groups a batch's SETs by node, sends each group in
one round trip, and follows `MOVED`/`ASK` redirections while slots migrate.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.cluster import RedisCluster
from redis.exceptions import (
    AuthenticationError,
    RedisClusterException,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream.errors import FatalError, TransientError
from stream.redis_sink import RedisSink, passing_refusal


class RedisClusterSink(RedisSink):
    """`RedisSink` over a Redis Cluster (`RECSTREAM_REDIS_CLUSTER=true`)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        ttl_s: int,
        password: str | None = None,
        timeout_s: float = 5.0,
        cold_start_key: str = "",
    ) -> None:
        """Connect lazily to the cluster that `url` (any one node) belongs to."""
        self.prefix = prefix
        self.cold_start_key = cold_start_key
        self.ttl_s = ttl_s
        self._ttl = str(ttl_s).encode()
        self._url, self._password, self._timeout_s = url, password, timeout_s
        self._cluster: RedisCluster | None = None

    @property
    def _client(self) -> RedisCluster:  # type: ignore[override]
        """The cluster client, made at first use: it reads the slot map as it is created."""
        if self._cluster is None:
            try:
                self._cluster = RedisCluster.from_url(
                    self._url,
                    password=self._password,
                    socket_timeout=self._timeout_s,
                    socket_connect_timeout=self._timeout_s,
                )
            except AuthenticationError as exc:
                raise FatalError(f"redis auth: {exc}") from exc
            except (RedisConnectionError, RedisTimeoutError, RedisClusterException) as exc:
                raise TransientError(f"redis cluster: {exc}") from exc
        return self._cluster

    def ping(self) -> bool:
        """Whether the cluster answers now (readiness)."""
        try:
            return super().ping()
        except (TransientError, FatalError, RedisClusterException):
            return False

    def close(self) -> None:
        """Close the cluster's connections, if any were made."""
        if self._cluster is not None:
            self._cluster.close()

    def publish(
        self, payloads: Sequence[tuple[str, bytes]], cold_start: bytes | None = None
    ) -> None:
        """Write `(user, payload)` pairs (and the cold-start list); returns once all were acked."""
        commands = [(self.prefix + user, value) for user, value in payloads]
        if cold_start is not None and self.cold_start_key:
            commands.append((self.cold_start_key, cold_start))
        if not commands:
            return
        pipe = self._client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
        for key, value in commands:
            pipe.set(key, value, ex=self.ttl_s)
        try:
            pipe.execute()
        except AuthenticationError as exc:
            raise FatalError(f"redis auth: {exc}") from exc
        except (RedisConnectionError, RedisTimeoutError, RedisClusterException) as exc:
            raise TransientError(f"redis cluster publish: {exc}") from exc
        except ResponseError as exc:
            if passing_refusal(exc):
                raise TransientError(f"redis refused a write for now: {exc}") from exc
            raise FatalError(f"redis refused a write: {exc}") from exc

    @property
    def address(self) -> str:
        """The node the cluster is reached through, without credentials."""
        where = self._url.rsplit("@", 1)[-1].removeprefix("redis://").removeprefix("rediss://")
        return f"{where} (cluster)"
