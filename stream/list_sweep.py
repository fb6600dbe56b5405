"""Take hidden items out of the lists already stored in Redis, without touching the hot path.

A removal reaches every list written after it (the worker ranks without the item), but
lists written before it stay until their user's next click or their TTL. The sweep walks
the keyspace under the list prefix with `SCAN`, and for each page asks Redis, in one Lua
call, which values contain any hidden item's msgpack bytes (a plain substring test, so
nothing but the few matching values crosses the wire). Each match is decoded here, the
hidden items and their scores are dropped (the rest of the list, its order, `ts`,
`event_ts` and `version` are kept), and the new value replaces the old one only if the
key still holds the value that was read (compare-and-set in Lua, the TTL kept): a list the
worker wrote meanwhile is newer and already leaves the item out, so it is never clobbered.

The stored contract is unchanged, so readers in any language need nothing new.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

import msgpack
import redis
from hiredis import pack_command as _pack_command
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream.errors import FatalError, TransientError
from stream.payload import Recommendation, encode_recommendation

# Values under the prefix whose bytes contain any needle (ARGV): [key, value, key, value...].
# `pcall` and the type test skip a key of another type (another writer under the prefix).
_MATCH = """
local hits = {}
for i = 1, #KEYS do
  local value = redis.pcall('GET', KEYS[i])
  if type(value) == 'string' then
    for j = 1, #ARGV do
      if string.find(value, ARGV[j], 1, true) then
        hits[#hits + 1] = KEYS[i]
        hits[#hits + 1] = value
        break
      end
    end
  end
end
return hits
"""

# Replace KEYS[1] with ARGV[2] only while it still holds ARGV[1]; the TTL is kept.
_COMPARE_AND_SET = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
"""

# Needles per Lua call: each key's value is searched once per needle.
MAX_NEEDLES = 64
_GLOB_SPECIALS = "\\*?[]"


def _glob_escape(text: str) -> str:
    """`text` as a literal in a Redis glob pattern (SCAN MATCH)."""
    return "".join("\\" + c if c in _GLOB_SPECIALS else c for c in text)


def needle(item: str) -> bytes:
    r"""An item id as it appears inside a stored list: its msgpack string encoding.

    >>> needle("i7")
    b'\xa2i7'
    """
    packed: bytes = msgpack.packb(item)
    return packed


def without(raw: bytes, hidden: Collection[str]) -> bytes | None:
    """The stored list `raw` with the `hidden` items (and their scores) dropped.

    None when it names none of them (a substring match that was not an item) or is not a
    list in the contract's shape (another writer's value: left alone).
    """
    try:
        value = msgpack.unpackb(raw, raw=False)
        items, scores = value["items"], value["scores"]
        keep = [n for n, item in enumerate(items) if item not in hidden]
        if len(keep) == len(items) or len(items) != len(scores):
            return None
        rec = Recommendation(
            "", [items[n] for n in keep], [scores[n] for n in keep], float(value["event_ts"])
        )
        return encode_recommendation(rec, float(value["ts"]), int(value["version"]))
    except (ValueError, TypeError, KeyError, msgpack.UnpackException):
        return None


@dataclass
class SweepStats:
    """What one sweep did: keys scanned, lists rewritten, lists left because they changed."""

    scanned: int = 0
    rewritten: int = 0
    raced: int = 0  # rewritten by the worker between the read and the write: already clean
    seconds: float = 0.0


class ListSweeper:
    """Scans `{prefix}*` and rewrites the lists that name hidden items; its own connection."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        *,
        page: int = 1000,
    ) -> None:
        """Sweep the keys under `prefix`, `page` keys per SCAN step and Lua call."""
        self._client = client
        self.prefix = prefix
        self.page = page
        self._match = client.register_script(_MATCH)
        self._swap = client.register_script(_COMPARE_AND_SET)
        self._swap_sha = ""  # loaded at each sweep: a restarted Redis forgets its scripts

    @classmethod
    def connect(
        cls,
        url: str,
        prefix: str,
        *,
        password: str | None = None,
        timeout_s: float = 5.0,
        page: int = 1000,
    ) -> ListSweeper:
        """A sweeper with its own client for `url` (connecting lazily)."""
        client = redis.Redis.from_url(
            url, password=password, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        return cls(client, prefix, page=page)

    def _pages(self) -> Iterator[list[bytes | str]]:
        """The keys under the prefix, a SCAN page at a time (a key may come twice: harmless)."""
        cursor, pattern = 0, _glob_escape(self.prefix) + "*"
        while True:
            cursor, keys = self._client.scan(cursor, match=pattern, count=self.page)
            if keys:
                yield keys
            if cursor == 0:
                return

    def sweep(self, items: Collection[str]) -> SweepStats:
        """Rewrite every stored list that names one of `items`; Redis errors mapped to kinds."""
        stats = SweepStats()
        started = time.perf_counter()
        hidden = set(items)
        needles = [needle(item) for item in sorted(hidden)]
        try:
            self._swap_sha = str(self._client.script_load(_COMPARE_AND_SET))
            for keys in self._pages():
                stats.scanned += len(keys)
                for at in range(0, len(needles), MAX_NEEDLES):
                    hits = self._match(keys=keys, args=needles[at : at + MAX_NEEDLES])
                    self._rewrite(hits, hidden, stats)
        except AuthenticationError as exc:  # a ConnectionError subclass: test it first
            raise FatalError(f"redis auth: {exc}") from exc
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise TransientError(f"redis sweep: {exc}") from exc
        except ResponseError as exc:
            raise TransientError(f"redis refused the sweep for now: {exc}") from exc
        stats.seconds = time.perf_counter() - started
        return stats

    def _rewrite(self, hits: Sequence[bytes], hidden: set[str], stats: SweepStats) -> None:
        """Compare-and-set each matching list without the hidden items: one round trip.

        Packed by hiredis and sent in one write, as the sink does: redis-py's pipeline
        costs more Python per command than the rewrite itself.
        """
        sha = self._swap_sha.encode()
        commands = []
        for key, raw in zip(hits[::2], hits[1::2], strict=True):
            cleaned = without(raw, hidden)
            if cleaned is not None:
                commands.append(_pack_command((b"EVALSHA", sha, b"1", key, raw, cleaned)))  # type: ignore[arg-type]
        if not commands:
            return
        pool = self._client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command([b"".join(commands)])  # type: ignore[no-untyped-call]
            done = sum(1 for _ in commands if connection.read_response())
        except BaseException:
            # Replies were left unread: the connection is out of step, drop it.
            connection.disconnect()  # type: ignore[no-untyped-call]
            raise
        finally:
            pool.release(connection)
        stats.rewritten += done
        stats.raced += len(commands) - done

    def close(self) -> None:
        """Close the connection pool."""
        try:
            self._client.close()
        except RedisError:  # closing a broken connection: nothing left to release
            return
