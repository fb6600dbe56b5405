"""Unit tests for `worker.tools.replay.read_interactions` over small generated files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from worker.tools.replay import (
    Interactions,
    ReplayFormatError,
    detect_format,
    paced,
    read_interactions,
    send_interactions,
)


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_udata_tab_format(tmp_path: Path) -> None:
    """MovieLens `u.data` (user, item, rating, ts by tabs) parses, sorted by time."""
    path = _write(
        tmp_path / "u.data",
        "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n",
    )
    data = read_interactions(path)
    assert len(data) == 3
    assert data.users == ["22", "196", "186"]
    assert data.items == ["377", "242", "302"]
    assert data.ts.tolist() == [878887116.0, 881250949.0, 891717742.0]


def test_dat_colon_format(tmp_path: Path) -> None:
    """MovieLens `ratings.dat` (`::` separated) parses, sorted by time."""
    path = _write(
        tmp_path / "ratings.dat",
        "1::1193::5::978300760\n1::661::3::978302109\n2::3068::4::978299000\n",
    )
    data = read_interactions(path)
    assert data.users == ["2", "1", "1"]
    assert data.items == ["3068", "1193", "661"]
    assert data.ts.tolist() == [978299000.0, 978300760.0, 978302109.0]


def test_csv_with_header_and_crlf(tmp_path: Path) -> None:
    """A CSV with a header row and CRLF line ends parses; ties keep file order."""
    text = (
        "userId,movieId,rating,timestamp\r\n"
        "1,31,2.5,1260759144\r\n"
        "1,1029,3.0,1260759179\r\n"
        "2,10,4.0,1260759144\r\n"
    )
    data = read_interactions(_write(tmp_path / "ratings.csv", text))
    assert data.users == ["1", "2", "1"]
    assert data.items == ["31", "10", "1029"]
    assert data.ts.tolist() == [1260759144.0, 1260759144.0, 1260759179.0]


def test_csv_three_columns_without_header(tmp_path: Path) -> None:
    """A headerless `user,item,ts` CSV parses, with blank lines skipped and ties in order."""
    text = "u1,a,5\nu2,b,3\n\nu3,c,5\nu4,d,3.5\nu5,e,3\n"
    data = read_interactions(_write(tmp_path / "clicks.csv", text))
    assert data.users == ["u2", "u5", "u4", "u1", "u3"]
    assert data.items == ["b", "e", "d", "a", "c"]
    assert data.ts.tolist() == [3.0, 3.0, 3.5, 5.0, 5.0]


@pytest.mark.parametrize(
    ("line", "fmt"),
    [("1::2::3::4", "dat"), ("1\t2\t3\t4", "udata"), ("1,2,3", "csv")],
)
def test_detect_format(line: str, fmt: str) -> None:
    """The format is told from the first line's separator."""
    assert detect_format(line) == fmt


def test_unknown_format_raises(tmp_path: Path) -> None:
    """A file with no known separator raises `ReplayFormatError`."""
    path = _write(tmp_path / "data.txt", "1 2 3 4\n5 6 7 8\n")
    with pytest.raises(ReplayFormatError, match="cannot tell the format"):
        read_interactions(path)


def test_bad_timestamp_mid_file_names_the_line(tmp_path: Path) -> None:
    """A bad timestamp after the first line raises `ReplayFormatError` naming its line."""
    path = _write(tmp_path / "u.data", "1\t2\t3\t100\n1\t3\t4\t101\n2\t5\t1\tsoon\n2\t6\t1\t102\n")
    with pytest.raises(ReplayFormatError, match=r"u\.data:3: bad timestamp"):
        read_interactions(path)


def test_too_few_fields_raises(tmp_path: Path) -> None:
    """A row with fewer than three fields raises `ReplayFormatError` naming its line."""
    path = _write(tmp_path / "c.csv", "u1,a,5\nu2,b\n")
    with pytest.raises(ReplayFormatError, match=r"c\.csv:2: expected 3 or 4 fields"):
        read_interactions(path)


def test_empty_file_raises(tmp_path: Path) -> None:
    """A file with only a header holds no interactions and is refused."""
    path = _write(tmp_path / "h.csv", "user,item,ts\n")
    with pytest.raises(ReplayFormatError, match="no interactions"):
        read_interactions(path)


def test_a_paced_replay_sends_a_steady_stream_not_half_second_bursts() -> None:
    """At 1k/s a chunk is 5 ms of events; flat out, chunks are large; the chunks cover all."""
    assert [stop - start for start, stop in paced(40, 1_000_000.0)] == [40]
    assert [stop - start for start, stop in paced(12, 1_000.0)] == [5, 5, 2]
    assert [stop - start for start, stop in paced(1200, 0.0)] == [500, 500, 200]
    assert [stop - start for start, stop in paced(3, 100.0)] == [1, 1, 1]


class _Recorder:
    """A producer that records what it is asked to do, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def connect(self) -> None:
        self.calls.append("connect")

    def send(self, key: bytes | None, value: bytes) -> None:  # noqa: ARG002
        self.calls.append("send")

    def poll(self) -> None:
        self.calls.append("poll")

    def flush(self) -> int:
        self.calls.append("flush")
        return 0


def test_a_paced_replay_reaches_the_broker_before_its_first_send() -> None:
    """Else its first second waits in the client's queue and lands as one late burst."""
    data = Interactions(["u1", "u2"], ["i1", "i2"], np.array([1.0, 2.0]))
    paced_producer, flat_producer = _Recorder(), _Recorder()
    send_interactions(paced_producer, data, rate=1_000.0)  # type: ignore[arg-type]
    send_interactions(flat_producer, data)  # type: ignore[arg-type]
    assert paced_producer.calls[:2] == ["connect", "send"]
    assert "connect" not in flat_producer.calls
