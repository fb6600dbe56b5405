"""The offered load of the latency runs: the outside load, from a producer process of its own.

The same load the issue's outside probe measured with (issue 20): users drawn
uniformly from 20,000, so almost every event touches a user with no list yet
in the batch, and items from a bounded Zipf(0.9) over 10,000, so that every
item of the catalogue can be clicked (an unbounded Zipf(1.3) folded onto 10k
ids, as before, left only a few hundred items live and made ranking cheap).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

USERS = 20_000
ITEMS = 10_000
ZIPF = 0.9
FLAT_OUT_STAMP_RATE = 10_000.0  # events/s of event time a flat-out run's stamps step by


@dataclass(frozen=True)
class Load:
    """Who clicks what, one pair per event, in the order they are offered."""

    users: npt.NDArray[np.int64]
    items: npt.NDArray[np.int64]


def zipf_weights(items: int, exponent: float) -> npt.NDArray[np.float64]:
    """P(rank k) ∝ k^-exponent over ranks 1..items, summing to 1 (any exponent > 0)."""
    weights = 1.0 / np.arange(1, items + 1, dtype=np.float64) ** exponent
    normalised: npt.NDArray[np.float64] = weights / weights.sum()
    return normalised


def draw(
    events: int, *, users: int = USERS, items: int = ITEMS, zipf: float = ZIPF, seed: int = 0
) -> Load:
    """`events` clicks: users uniform over `users`, items bounded Zipf(`zipf`) over `items`.

    Item ids are the popularity ranks shuffled, so popular items are spread
    over the id space rather than being its first rows.
    """
    rng = np.random.default_rng(seed)
    who = rng.integers(0, users, events, dtype=np.int64)
    rank = rng.choice(items, size=events, p=zipf_weights(items, zipf))
    what = rng.permutation(items).astype(np.int64)[rank]
    return Load(who, what)


def write_csv(load: Load, handle: IO[str], start: float = 0.0, rate: float = 1.0) -> None:
    """The load as the replay CLI's `user,item,ts` CSV, event n stamped `start + n / rate`.

    Stamped when it is offered, as a producer stamps a click when it happens. Stamps
    one second apart (the event's position, as before 2026-12-07) put 20,000 seconds
    between a user's clicks at any rate, so every click ended a session and its user
    was ranked again an hour of event time later (`worker.engine.between_sessions`);
    what that cost is in docs/benchmarks.md, "2026-12-07, afternoon".
    """
    pairs = enumerate(zip(load.users.tolist(), load.items.tolist(), strict=True))
    handle.write("".join(f"u{u},i{i},{start + n / rate:.4f}\n" for n, (u, i) in pairs))


def offer(
    bootstrap: str, topic: str, rate: float, events: int
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start a producer process offering `events` clicks of the outside load at `rate`/s.

    `rate` 0 is flat out, stamped as if offered at `FLAT_OUT_STAMP_RATE`. The producer
    is the replay CLI's (linger.ms 5). Returns the process and the CSV to delete after it.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as handle:
        write_csv(draw(events), handle, time.time(), rate or FLAT_OUT_STAMP_RATE)
        path = Path(handle.name)
    env = {
        **os.environ,
        "RECSTREAM_KAFKA_BOOTSTRAP": bootstrap,
        "RECSTREAM_KAFKA_TOPIC": topic,
        "RECSTREAM_LOG_LEVEL": "warning",
    }
    exe = str(Path(sys.executable).parent / "recstream")
    command = [exe, "replay", str(path), "--rate", str(rate)]
    if not Path(exe).exists():
        command = [sys.executable, "-m", "worker.cli", "replay", str(path), "--rate", str(rate)]
    producer = subprocess.Popen(  # noqa: S603  (our own CLI)
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return producer, path
