"""Redis edge: one pipelined write of a batch's lists, its replies checked in bulk."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import redis
from hiredis import pack_command as _pack_command
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream.errors import FatalError, TransientError
from stream.payload import decode_recommendation
from stream.redis_replies import read_oks

# Refusals that pass (failover, memory pressure, loading): retry rather than exit.
# Below this many SETs per connection, another connection costs more than it saves.
_MIN_PER_CONNECTION = 512
PASSING_REFUSALS = ("READONLY", "OOM", "TRYAGAIN", "MASTERDOWN", "LOADING", "BUSY", "CLUSTERDOWN")
# redis-py strips the code off the message of the refusals it has a class for (`-OOM ...`
# arrives as `OutOfMemoryError("command not allowed ...")`), so the class says it too.
_PASSING_CLASSES = (
    ReadOnlyError,
    OutOfMemoryError,
    TryAgainError,
    MasterDownError,
    BusyLoadingError,
    ClusterDownError,
)


def passing_refusal(exc: ResponseError) -> bool:
    """Whether Redis refused for now (failover, memory pressure, loading), not for good."""
    code = getattr(exc, "status_code", None) or str(exc).split(" ", 1)[0]
    return code in PASSING_REFUSALS or isinstance(exc, _PASSING_CLASSES)


class RedisSink:
    """Writes lists with `SET key value EX ttl`: a batch pipelined over a few connections."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        ttl_s: int,
        password: str | None = None,
        timeout_s: float = 5.0,
        cold_start_key: str = "",
        connections: int = 4,
    ) -> None:
        """Connect lazily to `url` (`redis://` or `rediss://` for TLS).

        `cold_start_key` (empty: none) is where the list for users without one goes.
        A large batch is split over up to `connections` connections written at once.
        """
        if connections < 1:
            raise ValueError(f"connections must be >= 1, got {connections}")
        self.connections = connections
        self._pool: ThreadPoolExecutor | None = None
        self.prefix = prefix
        self.cold_start_key = cold_start_key
        self.ttl_s = ttl_s
        self._ttl = str(ttl_s).encode()
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

    def publish(
        self, payloads: Sequence[tuple[str, bytes]], cold_start: bytes | None = None
    ) -> None:
        """Write `(user, payload)` pairs; returns only once Redis acknowledged all of them.

        `cold_start`, the list for users who have none, goes under `cold_start_key`
        in the same round trip (when that key is set).

        No MULTI/EXEC: each SET is idempotent and independent, and a
        transaction would only add a round trip and block the server.
        """
        prefix = self.prefix.encode()
        commands = [(prefix + user.encode(), value) for user, value in payloads]
        if cold_start is not None and self.cold_start_key:
            commands.append((self.cold_start_key.encode(), cold_start))
        if not commands:
            return
        lanes = min(self.connections, -(-len(commands) // _MIN_PER_CONNECTION))
        if lanes <= 1:
            self._write(commands)
            return
        # Disjoint slices on their own connections: Valkey parses one while the next is
        # packed and sent (socket I/O releases the GIL). Every slice is waited for before
        # the first failure is raised, so no write is left in flight behind the caller.
        step = -(-len(commands) // lanes)
        futures = [
            self._threads().submit(self._write, commands[at : at + step])
            for at in range(0, len(commands), step)
        ]
        errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.connections, thread_name_prefix="redis-sink")
        return self._pool

    def _write(self, commands: list[tuple[bytes, bytes]]) -> None:
        """One pipelined round trip of SETs on one pooled connection; errors mapped to kinds."""
        # The batch is packed by hiredis in C and sent in one write; its replies are read
        # and checked in bulk (`stream.redis_replies`). Same wire traffic as redis-py's
        # pipeline, without its per-command and per-reply Python work, which costs more
        # than the SETs themselves.
        ttl = self._ttl
        packed = b"".join(
            [
                _pack_command((b"SET", key, value, b"EX", ttl))  # type: ignore[arg-type]
                for key, value in commands
            ]
        )
        pool = self._client.connection_pool
        try:
            connection = pool.get_connection()
        except AuthenticationError as exc:  # a ConnectionError subclass: test it first
            raise FatalError(f"redis auth: {exc}") from exc
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise TransientError(f"redis publish: {exc}") from exc
        try:
            connection.send_packed_command([packed])  # type: ignore[no-untyped-call]
            read_oks(connection, len(commands))  # every reply read, then the first error raised
        except (RedisConnectionError, RedisTimeoutError) as exc:
            connection.disconnect()  # type: ignore[no-untyped-call]
            raise TransientError(f"redis publish: {exc}") from exc
        except ResponseError as exc:
            # Every reply was read: the connection is in step and goes back to the pool.
            if passing_refusal(exc):
                raise TransientError(f"redis refused a write for now: {exc}") from exc
            raise FatalError(f"redis refused a write: {exc}") from exc
        finally:
            pool.release(connection)

    @property
    def address(self) -> str:
        """Where the sink connects, without credentials: `host:port/db` or the socket path."""
        kwargs = self._client.connection_pool.connection_kwargs
        where = (
            kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        )
        return f"{where}/{kwargs.get('db', 0)}"

    def check(self) -> None:
        """Connect, select the database and ping, or raise what kind of trouble it is.

        `TransientError` while nothing answers (it may yet); `FatalError` when Redis answers
        but refuses (bad password, a database index out of range, any other refusal).
        """
        try:
            self._client.ping()
        except AuthenticationError as exc:  # a ConnectionError subclass: test it first
            raise FatalError(f"redis auth: {exc}") from exc
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise TransientError(f"redis: {exc}") from exc
        except ResponseError as exc:
            raise FatalError(f"redis refused: {exc}") from exc

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

    def get_cold_start(self) -> dict[str, object] | None:
        """The list for users who have none, decoded, or None."""
        if not self.cold_start_key:
            return None
        raw = self._client.get(self.cold_start_key)
        return None if raw is None else decode_recommendation(bytes(raw))  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop the writer threads and close the connection pool."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self._client.close()
