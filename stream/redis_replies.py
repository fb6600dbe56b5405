"""A pipeline's replies read in bulk: n `+OK`s checked with one comparison, not n parses.

redis-py parses and checks each reply in Python (`read_response`), which at
tens of thousands of SETs a batch costs more than Valkey's own work. Every
reply of a successful `SET ... EX` is the same five bytes, so the bytes of n
replies are read off the connection's socket and compared with n copies of `OK`
at once. Anything else (an error reply anywhere in the batch) is parsed reply by
reply with hiredis, as redis-py would, so the first error is raised as the same
exception class redis-py gives it.
"""

from __future__ import annotations

import socket

import hiredis
from redis._parsers import BaseParser
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

OK = b"+OK\r\n"
_CHUNK = 1 << 16


def read_oks(connection: AbstractConnection, count: int) -> None:
    """Read `count` replies from `connection`; raise the first error reply among them.

    Returns only once every reply was read, so the connection stays in step
    whatever they said. A dead or silent server raises redis-py's
    `ConnectionError` or `TimeoutError`, as its own reads do.
    """
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
    reader = hiredis.Reader(replyError=BaseParser.parse_error)
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
