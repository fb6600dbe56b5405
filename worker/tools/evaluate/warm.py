"""`recstream eval-warm`: what a warm start from offline vectors is worth, prequentially.

The stream is cut in two: a prefix an offline model is fitted on, and the events after
it, on which three Engines built from the same settings are scored batch by batch:
cold (nothing learned), warm from the prefix's ALS vectors (`models.warm_start`, the
path `recstream import-vectors` takes), and warm from replaying the prefix online (what
a worker that had been running all along would know: the ceiling for a warm start).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from models.device import resolve_device
from models.vectors import Vectors
from worker.app import build_engine
from worker.config.settings import Settings, with_values
from worker.tools.evaluate.data import Stream, load_file
from worker.tools.evaluate.engine_method import RecstreamMethod
from worker.tools.evaluate.peers import AlsConfig, PeriodicAls
from worker.tools.evaluate.protocol import K, evaluate


@dataclass(frozen=True)
class WarmResult:
    """HR@K on the events after the prefix, for each start."""

    prefix: int
    events: int
    hr: dict[str, float]


def _slice(stream: Stream, start: int, stop: int) -> Stream:
    part = slice(start, stop)
    return replace(
        stream,
        users=stream.users[part],
        items=stream.items[part],
        ts=stream.ts[part],
        counted=stream.counted[part],
        repeat=stream.repeat[part],
    )


def als_vectors(prefix: Stream, config: AlsConfig) -> Vectors:
    """Implicit's ALS fitted once on the prefix, as a vectors file would carry it."""
    als = PeriodicAls(prefix.n_users, prefix.n_items, replace(config, every=len(prefix)))
    als.learn(prefix.users, prefix.items, prefix.ts)
    if als.user_factors is None or als.item_factors is None:
        msg = "the prefix is empty: nothing to fit"
        raise ValueError(msg)
    users, items = np.flatnonzero(als.fitted_users), np.flatnonzero(als.fitted_items)
    return Vectors(
        prefix.item_ids[items].tolist(),
        als.item_factors[items],
        None,
        prefix.user_ids[users].tolist(),
        als.user_factors[users],
    )


def run_warm_eval(
    path: Path, settings: Settings, prefix: int, events: int, batch_size: int = 32
) -> WarmResult:
    """Fit on the first `prefix` events, score the next `events` from each start."""
    stream = load_file(path, prefix + events)
    head, tail = _slice(stream, 0, prefix), _slice(stream, prefix, len(stream))
    settings = with_values(settings, top_k=K)
    device = resolve_device(settings.device)
    hr: dict[str, float] = {}
    for start in ("cold", "warm: ALS vectors", "warm: prefix replayed online"):
        engine = build_engine(settings, device)
        if start == "warm: ALS vectors":
            offline = als_vectors(head, AlsConfig(factors=settings.model.dim))
            engine.warm_start(offline, seen_at=float(head.ts[-1]))
        elif start.startswith("warm: prefix"):
            evaluate(head, RecstreamMethod(engine, head), batch_size)
        outcome = evaluate(tail, RecstreamMethod(engine, tail), batch_size)
        hr[start] = outcome.headline.hr
    return WarmResult(prefix, len(tail), hr)
