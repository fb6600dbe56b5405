"""Helpers shared by the fault tests: the CLI's path, clicks, their messages, and waiting."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


class RunningWorker:
    """`recstream run` in a subprocess, its JSON log lines collected as they arrive (a pipe)."""

    def __init__(self, env: dict[str, str]) -> None:
        """Start the worker; its stdout and stderr are read by a thread of this process."""
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [RECSTREAM, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def events(self, name: str) -> list[dict[str, Any]]:
        """Every JSON log entry so far whose event is `name`."""
        out = []
        for line in list(self.lines):
            if line.startswith("{") and f'"{name}"' in line:
                entry = json.loads(line)
                if entry.get("event") == name:
                    out.append(entry)
        return out

    def wait_for(self, name: str, count: int = 1, timeout_s: float = 60) -> bool:
        """Wait until `name` was logged `count` times (False if the time is up or it exited)."""
        return (
            wait_until(
                lambda: len(self.events(name)) >= count or self.process.poll() is not None,
                timeout_s,
            )
            and len(self.events(name)) >= count
        )

    def tail(self, lines: int = 40) -> str:
        """The last lines of output, for assertion messages."""
        return "\n".join(self.lines[-lines:])

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM, wait, and return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout_s)
        self._reader.join(5)
        return code


def log_events(path: Path, event: str | None = None) -> list[dict[str, object]]:
    """The JSON log lines a `recstream run` wrote to `path` (only `event`'s, when given)."""
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if event is None or entry.get("event") == event:
                entries.append(entry)
    return entries
