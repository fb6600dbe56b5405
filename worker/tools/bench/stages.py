"""Each stage alone, on generated data, beside its baseline or roofline in the same run."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgpack
import numpy as np
import torch

from index.ivf import IVFIndex
from index.knn import backend_for, knn, torch_knn
from models.learner import LearnerConfig, OnlineLearner
from stream.batch import decode_messages
from stream.events import decode_event
from stream.redis_sink import RedisSink
from worker.config.parts import default_negatives
from worker.tools.bench.timing import median_seconds, sync


@dataclass(frozen=True)
class Row:
    """One measured line of a results table."""

    stage: str
    case: str
    rate: float  # items per second (events, users or lists)
    unit: str
    baseline: str = ""
    baseline_rate: float = 0.0
    note: str = ""

    @property
    def ratio(self) -> float:
        """Rate over the baseline's rate (0 without one)."""
        return self.rate / self.baseline_rate if self.baseline_rate else 0.0


class _Message:
    """Just enough of `confluent_kafka.Message` for `decode_messages` (stage timing only)."""

    __slots__ = ("_offset", "_value")

    def __init__(self, value: bytes, offset: int) -> None:
        self._value, self._offset = value, offset

    def topic(self) -> str:
        return "clicks"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return b""


def _events(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, 50_000, n), rng.integers(0, 20_000, n)
    return [
        {"user": f"u{u}", "item": f"i{i}", "ts": 1_700_000_000.0 + k}
        for k, (u, i) in enumerate(zip(users.tolist(), items.tolist(), strict=True))
    ]


def _parse_each(parse: Callable[[bytes], object], values: list[bytes]) -> list[object]:
    """Each value through the bare parser: the roofline of a batch decode."""
    return [parse(v) for v in values]


def bench_decode(n: int, repeats: int) -> list[Row]:
    """Batch decode of msgpack and JSON events, against bare msgpack/json parsing."""
    events = _events(n)
    rows = []
    for codec, encode, parse in (
        ("msgpack", msgpack.packb, msgpack.unpackb),
        ("json", lambda e: json.dumps(e).encode(), json.loads),
    ):
        messages = [_Message(encode(e), k) for k, e in enumerate(events)]
        values = [m.value() for m in messages]
        ours = median_seconds(partial(decode_messages, messages), repeats)
        bare = median_seconds(partial(_parse_each, parse, values), repeats)
        rows.append(
            Row(
                "decode",
                codec,
                n / ours,
                "events/s",
                f"bare {codec} parse",
                n / bare,
                "validated columns vs parse only",
            )
        )
    one = msgpack.packb(events[0])
    single = median_seconds(lambda: [decode_event(one, 0.0) for _ in range(n)], repeats)
    rows.append(Row("decode", "msgpack, one at a time", n / single, "events/s"))
    return rows


def _naive_learn(users: np.ndarray, items: np.ndarray, p: np.ndarray, q: np.ndarray) -> None:
    """Per-event Python SGD over numpy rows: what the naive worker does."""
    rng = np.random.default_rng(0)
    for u, i in zip(users.tolist(), items.tolist(), strict=True):
        j = int(rng.integers(0, q.shape[0]))
        pu, qi, qj = p[u], q[i], q[j]
        g = 1.0 / (1.0 + np.exp(pu @ (qi - qj)))
        p[u] += 0.05 * g * (qi - qj)
        q[i] += 0.05 * g * pu
        q[j] -= 0.05 * g * pu


def bench_learner(device: torch.device, batch_sizes: list[int], repeats: int) -> list[Row]:
    """Learner update events/s per batch size, and a per-event Python loop for scale."""
    users, items = 100_000, 50_000
    # The worker's default for this device (RECSTREAM_NEGATIVES unset).
    negatives = default_negatives(device.type)
    learner = OnlineLearner(LearnerConfig(dim=64, negatives=negatives), device)
    learner.users.rows_for([str(k) for k in range(users)])
    learner.items.rows_for([str(k) for k in range(items)])
    learner.sync_rows()
    gen = torch.Generator(device="cpu").manual_seed(0)
    rows = []
    for size in batch_sizes:
        u = torch.randint(0, users, (size,), generator=gen).to(device)
        i = torch.randint(0, items, (size,), generator=gen).to(device)
        w = torch.ones(size, device=device)
        seconds = median_seconds(partial(learner.learn, u, i, w), repeats, device)
        rows.append(
            Row(
                "learn",
                f"batch {size:,}",
                size / seconds,
                "events/s",
                note=f"{device}, {negatives} shared negatives",
            )
        )
    n = 2_000
    p = np.random.default_rng(1).normal(0, 0.1, (users, 64)).astype(np.float32)
    q = np.random.default_rng(2).normal(0, 0.1, (items, 64)).astype(np.float32)
    uu, ii = (
        np.random.default_rng(3).integers(0, users, n),
        np.random.default_rng(4).integers(0, items, n),
    )
    loop = median_seconds(lambda: _naive_learn(uu, ii, p, q), max(1, repeats // 2))
    for row in list(rows):
        rows[rows.index(row)] = Row(
            **{**row.__dict__, "baseline": "per-event numpy loop", "baseline_rate": n / loop}
        )
    return rows


def bench_search(
    device: torch.device, sizes: list[int], dims: list[int], queries: int, k: int, repeats: int
) -> list[Row]:
    """Exact top-k users/s (FAISS where it serves) vs torch matmul+topk; IVF build and recall."""
    rows = []
    gen = torch.Generator(device="cpu").manual_seed(0)
    for size in sizes:
        for dim in dims:
            items = torch.randn(size, dim, generator=gen).to(device)
            # Fewer queries on the largest CPU matrices keep the suite inside its time budget.
            n_q = queries if device.type == "cuda" or size < 10**6 else queries // 4
            q = torch.randn(n_q, dim, generator=gen).to(device)
            ours = median_seconds(partial(knn, q, items, k), repeats, device)
            base = median_seconds(partial(torch_knn, q, items, k), repeats, device)
            rows.append(
                Row(
                    "search",
                    f"exact {size:,} items, dim {dim}",
                    n_q / ours,
                    "users/s",
                    "torch matmul+topk",
                    n_q / base,
                    backend_for(device),
                )
            )
    size, dim = sizes[-1], dims[len(dims) // 2]
    items = torch.randn(size, dim, generator=gen).to(device)
    q = torch.randn(queries, dim, generator=gen).to(device)
    _, exact_rows = knn(q, items, k)
    index = IVFIndex(nlist=1024, nprobe=16, refresh_s=1e9)
    start = time.perf_counter()
    index.refresh(items, torch.empty(0, dtype=torch.int64, device=device))
    index.wait_for_build(600)
    index.refresh(items, torch.empty(0, dtype=torch.int64, device=device))
    build = time.perf_counter() - start
    sync(device)
    ivf = median_seconds(lambda: index.search(q, k), repeats, device)
    _, ivf_rows = index.search(q, k)
    recall = np.mean(
        [
            len(set(a.tolist()) & set(b.tolist())) / k
            for a, b in zip(exact_rows.cpu(), ivf_rows.cpu(), strict=True)
        ]
    )
    rows.append(
        Row(
            "search",
            f"ivf {size:,} items, dim {dim}, nprobe 16" + (", PQ codes" if index.coded else ""),
            queries / ivf,
            "users/s",
            "exact (same run)",
            next(
                r.rate
                for r in rows
                if r.case.startswith(f"exact {size:,}") and r.case.endswith(f"dim {dim}")
            ),
            f"recall@{k} {recall:.3f}, build {build:.2f} s",
        )
    )
    index.close()
    return rows


def raw_resp_set_rate(redis_url: str, commands: list[tuple[bytes, bytes]], ttl: int) -> float:
    """SETs/s Valkey itself takes: pre-packed RESP, one socket, the whole batch pipelined.

    The `redis-benchmark -P` roofline for these exact keys and values, measured in
    the same run: nothing packed or parsed in Python while the clock runs.
    """
    import socket
    from urllib.parse import urlparse

    from hiredis import pack_command

    where = urlparse(redis_url)
    ex = str(ttl).encode()
    packed = b"".join(pack_command((b"SET", k, v, b"EX", ex)) for k, v in commands)  # type: ignore[arg-type]
    expected = 5 * len(commands)  # "+OK\r\n" each
    with socket.create_connection((where.hostname or "localhost", where.port or 6379)) as sock:
        start = time.perf_counter()
        sock.sendall(packed)
        got = 0
        while got < expected:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("redis closed the connection")
            got += len(chunk)
        return len(commands) / (time.perf_counter() - start)


def bench_publish(redis_url: str, ks: list[int], lists: int, repeats: int) -> list[Row]:
    """Lists/s through `ListEncoder` + `RedisSink` vs raw-RESP pipelined SETs of the same bytes."""
    from stream.payload import ListEncoder

    sink = RedisSink(redis_url, prefix="bench:", ttl_s=60)
    rng = np.random.default_rng(0)
    ids = np.array([f"i{j}" for j in range(10_000)], dtype=object)
    event_ts = np.full(lists, 1_700_000_000.0)
    users = [f"u{n}" for n in range(lists)]
    encoder = ListEncoder()
    rows = []
    for k in ks:
        items = rng.integers(0, ids.size, (lists, k))
        scores = np.sort(rng.normal(size=(lists, k)).astype(np.float32), axis=1)[:, ::-1]

        def ours(items: np.ndarray = items, scores: np.ndarray = scores) -> None:
            payloads = encoder.encode(ids.__getitem__, items, scores, event_ts, time.time(), 1)
            sink.publish(list(zip(users, payloads, strict=True)))

        payloads = encoder.encode(ids.__getitem__, items, scores, event_ts, time.time(), 1)
        commands = [(f"bench:{u}".encode(), p) for u, p in zip(users, payloads, strict=True)]
        t_ours = median_seconds(ours, repeats)
        roof = statistics.median(raw_resp_set_rate(redis_url, commands, 60) for _ in range(repeats))
        rows.append(
            Row(
                "publish",
                f"K={k}",
                lists / t_ours,
                "lists/s",
                "raw RESP pipelined SET, same bytes (roofline)",
                roof,
                f"encode + SET, {len(payloads[0])} B values, {sink.connections} connections",
            )
        )
    sink.close()
    return rows
