"""Measure the catalogue sweep: N stored lists, items removed that appear in some share of them.

`python -m worker.tools.sweep_bench [--users 1000000] [--top-k 50] [--redis URL]`
(without `--redis`: an embedded Valkey). Fills N lists of K items (contract payloads, item
ids like a real catalogue's), where the item `gone-none` is in no list, `gone-1pct` in 1 %,
`gone-20pct` in 20 % and `gone-all` in every list; then sweeps each out in that order with
the worker's own `ListSweeper`, while a second connection PINGs every 10 ms to see how long
the sweep's Lua calls keep other clients (the worker's writes) waiting. Prints one JSON
line per sweep.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from typing import Self

import numpy as np

from stream.list_sweep import ListSweeper
from stream.payload import Recommendation, encode_recommendation
from stream.reader import connect
from stream.redis_sink import RedisSink

SHARES = {"gone-none": 0.0, "gone-1pct": 0.01, "gone-20pct": 0.2, "gone-all": 1.0}


def _fill(sink: RedisSink, users: int, top_k: int, seed: int = 0) -> None:
    """Write `users` lists of `top_k` items, naming each `gone-*` item in its share of them."""
    rng = np.random.default_rng(seed)
    catalogue = rng.integers(0, 10**6, size=(users, top_k))
    draws = rng.random(users)
    step = 10_000
    for first in range(0, users, step):
        payloads = []
        for n in range(first, min(users, first + step)):
            items = [f"item-{i}" for i in catalogue[n]]
            slot = 0
            for name, share in SHARES.items():
                if share and draws[n] < share:
                    items[slot % top_k] = name
                    slot += 7  # spread over the list, not only at its head
            scores = [float(top_k - k) for k in range(top_k)]
            rec = Recommendation("", items, scores, 1.7e9)
            payloads.append((f"user-{n}", encode_recommendation(rec, 1.7e9, 1)))
        sink.publish(payloads)


class _Probe:
    """PINGs Redis every 10 ms on its own connection; keeps the longest answer."""

    def __init__(self, url: str) -> None:
        self._client = connect(url)
        self.worst_ms = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            start = time.perf_counter()
            self._client.ping()
            self.worst_ms = max(self.worst_ms, (time.perf_counter() - start) * 1000)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._client.close()


def measure(url: str, users: int, top_k: int, page: int) -> list[dict[str, object]]:
    """One record per `gone-*` item: lists scanned and rewritten, seconds, worst PING."""
    prefix = f"sweep-bench-{uuid.uuid4().hex[:8]}:"
    sink = RedisSink(url, prefix=prefix, ttl_s=3600)
    sweeper = ListSweeper.connect(url, prefix, page=page)
    results: list[dict[str, object]] = []
    try:
        start = time.perf_counter()
        _fill(sink, users, top_k)
        fill_s = time.perf_counter() - start
        for item, share in SHARES.items():
            with _Probe(url) as probe:
                stats = sweeper.sweep({item})
            results.append(
                {
                    "item": item,
                    "share": share,
                    "lists": users,
                    "top_k": top_k,
                    "page": page,
                    "scanned": stats.scanned,
                    "rewritten": stats.rewritten,
                    "sweep_s": round(stats.seconds, 2),
                    "lists_per_s": round(stats.scanned / stats.seconds),
                    "worst_ping_ms": round(probe.worst_ms, 1),
                    "fill_s": round(fill_s, 1),
                }
            )
    finally:
        sweeper.close()
        sink.close()
    return results


def main() -> None:
    """Parse the arguments, start Valkey unless given one, measure, print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--redis", default=None, help="a Redis URL (default: embedded Valkey)")
    args = parser.parse_args()
    server = None
    url = args.redis
    if url is None:
        from worker.testing.embedded import start_redis

        server = start_redis()
        url = server.url
    try:
        for record in measure(url, args.users, args.top_k, args.page):
            print(json.dumps(record))  # noqa: T201  (the command's report)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
