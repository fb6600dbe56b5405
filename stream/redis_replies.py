"""A pipeline's replies read in bulk: n `+OK`s checked with one comparison, not n parses.

redis-py parses and checks each reply in Python (`read_response`), which at
tens of thousands of SETs a batch costs more than Valkey's own work. Every
reply of a successful `SET ... EX` is the same five bytes, so the bytes of n
replies are read off the connection's socket and compared with n copies of `OK`
at once. Anything else (an error reply anywhere in the batch) is parsed reply by
reply with hiredis, as redis-py would, so the first error is raised as the same
exception class redis-py gives it.

Reading the socket directly leans on two parts of redis-py that are not public
(`connection._sock`, `redis._parsers.BaseParser`); where either is missing, the
replies are read one at a time through redis-py's own `read_response`, with the
same contract (every reply read, then the first error raised).
"""

from __future__ import annotations

import socket
from typing import Any

import hiredis
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

try:
    from redis._parsers import BaseParser

    _PARSE_ERROR: Any = BaseParser.parse_error
except ImportError:  # a redis-py without it: `read_response`, one reply at a time
    _PARSE_ERROR = None

OK = b"+OK\r\n"
_CHUNK = 1 << 16


def read_oks(connection: AbstractConnection, count: int) -> None:
    """Read `count` replies from `connection`; raise the first error reply among them.

    Returns only once every reply was read, so the connection stays in step
    whatever they said. A dead or silent server raises redis-py's
    `ConnectionError` or `TimeoutError`, as its own reads do.
    """
    if _PARSE_ERROR is None or not hasattr(connection, "_sock"):
        _read_one_at_a_time(connection, count)
        return
    sock: socket.socket | None = connection._sock  # noqa: SLF001  (the connected socket)
    if sock is None:
        raise RedisConnectionError("redis connection closed before its replies")
    expected = memoryview(OK * count)
    received = bytearray()
    while len(received) < len(expected):
        chunk = _receive(sock)
        at = len(received)
        received += chunk
        if expected[at : at + len(chunk)] != chunk:
            break  # not (only) +OK from here: parse what came and what is to come
    else:
        if len(received) == len(expected):
            return
    _parse_replies(sock, received, count)


def _read_one_at_a_time(connection: AbstractConnection, count: int) -> None:
    """redis-py's own reads, each reply parsed alone; every one read before an error is raised."""
    first: ResponseError | None = None
    for _ in range(count):
        try:
            connection.read_response()
        except ResponseError as exc:
            first = first or exc
    if first is not None:
        raise first


def _receive(sock: socket.socket) -> bytes:
    try:
        chunk = sock.recv(_CHUNK)
    except TimeoutError as exc:
        raise RedisTimeoutError("timeout reading the batch's replies") from exc
    except OSError as exc:
        raise RedisConnectionError(f"error reading the batch's replies: {exc}") from exc
    if not chunk:
        raise RedisConnectionError("connection closed by the server mid-batch")
    return chunk


def _parse_replies(sock: socket.socket, received: bytearray, count: int) -> None:
    """Parse `count` replies (what `received` holds, then the socket), raising the first error."""
    reader = hiredis.Reader(replyError=_PARSE_ERROR)
    reader.feed(bytes(received))
    first: ResponseError | None = None
    for _ in range(count):
        reply = reader.gets()
        while reply is False:
            reader.feed(_receive(sock))
            reply = reader.gets()
        if first is None and isinstance(reply, ResponseError):
            first = reply
    if reader.has_data():
        raise RedisConnectionError("more replies than commands: the connection is out of step")
    if first is not None:
        raise first


__all__ = ["OK", "read_oks"]
