"""Read timestamped interaction files and send them to the clicks topic."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recstream.errors import RecstreamError
from stream.click_producer import ClickProducer
from stream.events import ClickEvent, encode_event


class ReplayFormatError(RecstreamError):
    """The file is not in a format replay understands."""


@dataclass(frozen=True)
class Interactions:
    """Parallel columns of a file, sorted by time (ties keep file order)."""

    users: list[str]
    items: list[str]
    ts: np.ndarray

    def __len__(self) -> int:
        """Number of interactions."""
        return len(self.users)


def detect_format(first_line: str) -> str:
    """`udata` (tab), `dat` (`::`) or `csv`, from the first line."""
    if "::" in first_line:
        return "dat"
    if "\t" in first_line:
        return "udata"
    if "," in first_line:
        return "csv"
    raise ReplayFormatError(f"cannot tell the format of a line like {first_line[:60]!r}")


def _split(line: str, fmt: str) -> list[str]:
    if fmt == "dat":
        return line.split("::")
    if fmt == "udata":
        return line.split("\t")
    return line.split(",")


def read_interactions(path: Path, fmt: str = "auto") -> Interactions:
    """Load `user item [rating] ts` rows from MovieLens `u.data`, `ratings.dat` or a CSV.

    CSV may have a header and 3 (`user,item,ts`) or 4 (`user,item,rating,ts`)
    columns; CRLF line ends are fine. Every row is a click at its timestamp.
    """
    users: list[str] = []
    items: list[str] = []
    stamps: list[float] = []
    with path.open(encoding="utf-8", errors="replace", newline=None) as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line:
                continue
            if fmt == "auto":
                fmt = detect_format(line)
            fields = _split(line, fmt)
            if len(fields) < 3:  # noqa: PLR2004  (user, item, ts at least)
                raise ReplayFormatError(f"{path}:{number}: expected 3 or 4 fields, got {line!r}")
            try:
                stamp = float(fields[3] if len(fields) > 3 else fields[2])  # noqa: PLR2004
            except ValueError:
                if number == 1:  # a header line
                    continue
                raise ReplayFormatError(f"{path}:{number}: bad timestamp in {line!r}") from None
            users.append(fields[0].strip())
            items.append(fields[1].strip())
            stamps.append(stamp)
    if not users:
        raise ReplayFormatError(f"{path}: no interactions")
    ts = np.asarray(stamps, dtype=np.float64)
    order = np.argsort(ts, kind="stable")
    return Interactions([users[i] for i in order], [items[i] for i in order], ts[order])


FLAT_OUT_CHUNK = 500  # events sent between polls of the producer when not paced
PACE_TICK_S = 0.005  # a paced replay sends what this long holds, then waits for its due time


def paced(total: int, rate: float, chunk: int | None = None) -> Iterator[tuple[int, int]]:
    """Yield `[start, stop)` chunks, sleeping to hold `rate` events/s on average (0: flat out).

    By default a chunk is what `rate` sends in `PACE_TICK_S` (at most `FLAT_OUT_CHUNK`):
    a steady stream, as real clicks arrive, not one burst every half second at 1k/s,
    which a consumer would measure as a burst's latency, not the rate's.
    """
    if chunk is None:
        chunk = (
            FLAT_OUT_CHUNK if rate <= 0 else max(1, min(FLAT_OUT_CHUNK, round(rate * PACE_TICK_S)))
        )
    started = time.perf_counter()
    for start in range(0, total, chunk):
        if rate > 0:
            due = started + start / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        yield start, min(total, start + chunk)


def send_interactions(
    producer: ClickProducer,
    data: Interactions,
    rate: float = 0.0,
    limit: int | None = None,
    quiet: bool = True,
) -> int:
    """Produce each interaction as a msgpack event keyed by user; returns how many were sent.

    `quiet=False` shows a progress bar on a terminal.
    """
    from worker.tools.progress import bar

    total = len(data) if limit is None else min(limit, len(data))
    if rate > 0:  # a paced stream starts on time, not behind the client's own start-up
        producer.connect()
    with bar(total, "replay", quiet=quiet, unit="ev") as progress:
        for start, stop in paced(total, rate):
            for n in range(start, stop):
                user = data.users[n]
                event = ClickEvent(user=user, item=data.items[n], ts=float(data.ts[n]))
                producer.send(user.encode(), encode_event(event))
            producer.poll()
            progress.update(stop - start)
    producer.flush()
    return total
