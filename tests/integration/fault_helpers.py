"""Helpers shared by the fault tests: the CLI's path, clicks, their messages, and waiting."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgpack

RECSTREAM = str(Path(sys.executable).parent / "recstream")
SENTINEL = b"\xc1"  # never valid msgpack


def click_stream(start: int, count: int) -> list[tuple[str, str, float]]:
    """Clicks `start..start+count` of one fixed stream: 40 users over 300 items, 1 s apart."""
    return [
        (f"u{n % 40}", f"i{(n * 13) % 300}", 1_700_000_000.0 + n)
        for n in range(start, start + count)
    ]


def click_messages(events: list[tuple[str, str, float]]) -> list[tuple[bytes, bytes]]:
    """Keyed msgpack messages of `events`, as a producer sends them."""
    return [(u.encode(), msgpack.packb({"user": u, "item": i, "ts": ts})) for u, i, ts in events]


def wait_until(condition: Callable[[], bool], timeout_s: float, every_s: float = 0.2) -> bool:
    """Poll `condition` until it holds or the time is up; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return condition()


def log_events(path: Path, event: str | None = None) -> list[dict[str, object]]:
    """The JSON log lines a `recstream run` wrote to `path` (only `event`'s, when given)."""
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if event is None or entry.get("event") == event:
                entries.append(entry)
    return entries
