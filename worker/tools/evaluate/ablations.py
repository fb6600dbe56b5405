"""What each part of recstream is worth: one source left out, or one feature group zeroed.

Each variant replays the same prefix of a stream as the whole does, with
`RECSTREAM_CANDIDATES_SOURCES` or `RECSTREAM_CANDIDATES_RANKER_DROP` changed, and
is read on both horizons against the whole. The variants are scored on the same
events and the same user-checkpoint pairs, so a change's noise is that of the
paired differences, clustered by user (`worker.tools.evaluate.paired`). A replay
is one torch thread, so the variants run side by side in processes, one per core
given. Spawned, not forked: a fork of a process whose OpenMP pool has run can
hang in the child.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import faiss
import numpy as np

from models.device import resolve_device
from worker.app import build_engine
from worker.config.settings import Settings, with_values
from worker.engine.candidate_names import GROUPS
from worker.tools.evaluate.data import BoolArray, IntArray, Stream, encode
from worker.tools.evaluate.engine_method import RecstreamMethod
from worker.tools.evaluate.paired import paired_error
from worker.tools.evaluate.protocol import K, Pairs, evaluate
from worker.tools.replay import Interactions

WHOLE = "the whole, as configured"


@dataclass(frozen=True)
class Variant:
    """recstream with some `RECSTREAM_*` values changed (`with_values` names), named for a table."""

    name: str
    values: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Ablation:
    """One variant's figures on a stream's prefix."""

    variant: str
    hr: float  # next-click HR@K
    long_horizon: float  # long-horizon HR@K
    events: int = 0  # events the next click was scored on
    pairs: int = 0  # (user, checkpoint) pairs the long horizon averages
    # per scored event, in stream order: its user and whether it was a hit; the pairs' own
    hit_users: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)
    hits: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool), repr=False)
    pair_hits: Pairs = field(default_factory=Pairs.none, repr=False)


def variants(settings: Settings) -> list[Variant]:
    """The whole, then each source but the vector one left out, then each feature group zeroed.

    Parts the settings already leave out are not ablated again.
    """
    candidates = settings.candidates
    sources, dropped = candidates.sources, candidates.ranker_drop
    found = [Variant(WHOLE)]
    found += [
        Variant(f"without {gone}", {"candidates_sources": tuple(s for s in sources if s != gone)})
        for gone in sources
        if gone != "vector"
    ]
    found += [
        Variant(f"ranker without {group} features", {"candidates_ranker_drop": (*dropped, group)})
        for group in GROUPS
        if group not in dropped
    ]
    return found


def head(stream: Stream, events: int) -> Stream:
    """The first `events` events of `stream`, coded afresh (ids and flags as a shorter file's)."""
    stop = min(events, len(stream))
    data = Interactions(
        stream.user_ids[stream.users[:stop]].tolist(),
        stream.item_ids[stream.items[:stop]].tolist(),
        stream.ts[:stop],
    )
    return encode(stream.name, data)


def replay(stream: Stream, settings: Settings, variant: Variant, batch_size: int) -> Ablation:
    """One variant's replay of `stream`, in this process, on the threads it is given."""
    changed = with_values(settings, **variant.values) if variant.values else settings
    engine = build_engine(changed, resolve_device(changed.device))
    outcome = evaluate(stream, RecstreamMethod(engine, stream), batch_size)
    return Ablation(
        variant.name,
        outcome.headline.hr,
        outcome.long_horizon,
        outcome.headline.events,
        outcome.long_horizon_users,
        hit_users=stream.headline_users,
        hits=outcome.hits,
        pair_hits=outcome.pairs,
    )


def run_ablations(
    stream: Stream, settings: Settings, events: int, batch_size: int, processes: int
) -> list[Ablation]:
    """Every variant (`variants`) on the first `events` events of `stream`, whole first."""
    prefix = head(stream, events)
    chosen = variants(settings)
    if processes <= 1:
        return [replay(prefix, settings, v, batch_size) for v in chosen]
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=spawn, initializer=_one_thread_each) as pool:
        pending = [pool.submit(replay, prefix, settings, v, batch_size) for v in chosen]
        try:
            return [job.result() for job in pending]
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # the queued ones need not run
            raise


def _one_thread_each() -> None:
    """A replay process runs on one torch and one FAISS thread: the processes share the cores.

    Only the processes' own counts: the caller's stay as they were.
    """
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)  # an IVF index would otherwise take every core per process


def ablation_lines(ablations: list[Ablation], events: int) -> list[str]:
    """A markdown table: each variant's two horizons and its change against the whole, ± noise."""
    whole = next(a for a in ablations if a.variant == WHOLE)
    lines = [
        (
            f"Ablations on the first {events:,} events (each a replay of that prefix; the "
            f"change is against the whole on the same prefix: {whole.events:,} events and "
            f"{whole.pairs:,} user-checkpoint pairs). After each change, one standard error "
            "of it, from the differences event by event (pair by pair) against the whole, "
            "clustered by user: a change within about twice that is noise. A zeroed group "
            "is zero wherever the features are read, so without popularity the mix with "
            "popularity between sessions is off too, and without neighbours the taste's mix:"
        ),
        "",
        f"| variant | HR@{K} | change | long-horizon HR@{K} | change |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for a in ablations:
        next_click = later = ""
        if a is not whole:
            next_click = _change(a.hr, whole.hr, change_error(a.hits, whole.hits, whole.hit_users))
            later = _change(
                a.long_horizon,
                whole.long_horizon,
                change_error(a.pair_hits.hits, whole.pair_hits.hits, whole.pair_hits.users),
            )
        lines.append(
            f"| {a.variant} | {a.hr:.4f} | {next_click} | {a.long_horizon:.4f} | {later} |"
        )
    return lines


def change_error(hits: BoolArray, whole: BoolArray, users: IntArray) -> float:
    """One standard error of `hits`' rate minus `whole`'s, relative to `whole`'s (nan: unknown).

    Both are scored on the same trials (events or pairs): `paired.paired_error`.
    """
    if not whole.any():
        return float("nan")
    return paired_error(hits, whole, users) / float(whole.mean())


def _change(value: float, whole: float, error: float = float("nan")) -> str:
    """`value` against `whole` in percent, signed, ± `error` (relative) where known."""
    if not np.isfinite(whole) or whole == 0:
        return ""
    change = f"{(value / whole - 1) * 100:+.1f} %"
    return f"{change} ± {error * 100:.1f}" if np.isfinite(error) else change
