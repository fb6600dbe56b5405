"""Helpers shared by the fault tests: the CLI's path, clicks, their messages, and waiting."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
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

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every JSON log entry so far (only `name`'s, when given)."""
        return parse_log_lines(list(self.lines), name)

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


def parse_log_lines(lines: Iterable[str], event: str | None = None) -> list[dict[str, Any]]:
    """The JSON log entries among `lines` (only `event`'s, when given): the one parser of logs.

    A worker's output mixes JSON lines with anything else a library prints, and a
    file read while the worker writes it can end in half a line: whatever is not
    one whole JSON object is skipped, never an error.
    """
    entries = []
    for line in lines:
        text = line.strip()
        if not (text.startswith("{") and text.endswith("}")):
            continue
        if event is not None and f'"{event}"' not in text:
            continue  # cheap filter first: most lines are other events
        try:
            entry = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and (event is None or entry.get("event") == event):
            entries.append(entry)
    return entries


def log_events(path: Path, event: str | None = None) -> list[dict[str, Any]]:
    """The JSON log lines a `recstream run` wrote to `path` (only `event`'s, when given)."""
    return parse_log_lines(path.read_text(errors="replace").splitlines(), event)


def output_events(output: bytes | str, event: str | None = None) -> list[dict[str, Any]]:
    """The JSON log lines in a finished process's captured output (only `event`'s, when given)."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    return parse_log_lines(text.splitlines(), event)
