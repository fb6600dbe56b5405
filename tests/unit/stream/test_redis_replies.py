"""Bulk reply checking (`stream.redis_replies.read_oks`) over a real socket pair."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, OutOfMemoryError, ReadOnlyError, ResponseError

from stream.redis_replies import OK, read_oks


class _Connection:
    """The one attribute of a redis-py connection that `read_oks` reads."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected socket pair: (the client's end, the server's end)."""
    client, server = socket.socketpair()
    client.settimeout(5.0)
    yield client, server
    client.close()
    server.close()


def _serve(server: socket.socket, replies: bytes, pieces: int) -> threading.Thread:
    """Send `replies` in `pieces` writes from another thread (a reply may be split anywhere)."""

    def send() -> None:
        step = max(1, -(-len(replies) // pieces))
        for at in range(0, len(replies), step):
            server.sendall(replies[at : at + step])

    thread = threading.Thread(target=send)
    thread.start()
    return thread


@pytest.mark.parametrize("pieces", [1, 3, 997])
def test_all_oks_are_read_and_nothing_raised(
    pair: tuple[socket.socket, socket.socket], pieces: int
) -> None:
    """N +OK replies, however they are split, are read whole and accepted."""
    client, server = pair
    sender = _serve(server, OK * 5_000, pieces)
    read_oks(_Connection(client), 5_000)  # type: ignore[arg-type]
    sender.join()
    client.settimeout(0.0)
    with pytest.raises(BlockingIOError):
        client.recv(1)  # nothing left unread


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (b"-OOM command not allowed when used memory > 'maxmemory'.\r\n", OutOfMemoryError),
        (b"-READONLY You can't write against a read only replica.\r\n", ReadOnlyError),
        (b"-E\r\n", ResponseError),
        (b"-NOPERM no permissions to access the key\r\n", NoPermissionError),
    ],
)
@pytest.mark.parametrize("pieces", [1, 7])
def test_an_error_in_the_middle_is_raised_after_every_reply_is_read(
    pair: tuple[socket.socket, socket.socket], error: bytes, kind: type[Exception], pieces: int
) -> None:
    """An error reply among OKs raises its redis-py class, and the replies after it are read."""
    client, server = pair
    sender = _serve(server, OK * 700 + error + OK * 300, pieces)
    with pytest.raises(kind) as raised:
        read_oks(_Connection(client), 1_001)  # type: ignore[arg-type]
    sender.join()
    assert type(raised.value) is kind
    client.settimeout(0.0)
    with pytest.raises(BlockingIOError):
        client.recv(1)  # in step: all 1,001 replies were taken, the ones after the error too


def test_a_server_that_hangs_up_mid_batch_is_a_connection_error(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Fewer replies than commands, then EOF: redis-py's ConnectionError, not a hang."""
    client, server = pair
    server.sendall(OK * 10)
    server.shutdown(socket.SHUT_WR)
    with pytest.raises(RedisConnectionError):
        read_oks(_Connection(client), 11)  # type: ignore[arg-type]


class _OneAtATime:
    """A connection as redis-py gives it, read a reply at a time (no socket to read)."""

    def __init__(self, replies: list[object]) -> None:
        self.replies = replies
        self.read = 0

    def read_response(self) -> object:
        reply = self.replies[self.read]
        self.read += 1
        if isinstance(reply, Exception):
            raise reply
        return reply


def test_without_redis_py_internals_every_reply_is_still_read_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where redis-py lacks the parts read_oks leans on, one-at-a-time reads keep the contract."""
    from redis.exceptions import ResponseError

    from stream import redis_replies

    monkeypatch.setattr(redis_replies, "_PARSE_ERROR", None)
    connection = _OneAtATime([b"OK", ResponseError("NOPERM no"), b"OK", ResponseError("ERR x")])
    with pytest.raises(ResponseError, match="NOPERM"):
        redis_replies.read_oks(connection, 4)  # type: ignore[arg-type]
    assert connection.read == 4  # the connection stays in step
    redis_replies.read_oks(_OneAtATime([b"OK", b"OK"]), 2)  # type: ignore[arg-type]
