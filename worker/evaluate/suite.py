"""`recstream eval`: every method over every stream, a summary, and docs/accuracy.md."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import torch

from models import resolve_device
from worker.app import build_engine
from worker.evaluate.data import Stream, drifting, load_file
from worker.evaluate.peers import (
    AlsConfig,
    Isgd,
    IsgdConfig,
    MostPopular,
    PeriodicAls,
    RecentPopular,
)
from worker.evaluate.protocol import K, Method, Outcome, evaluate
from worker.evaluate.recstream import RecstreamMethod
from worker.evaluate.report import (
    DatasetResult,
    keep_hand_written,
    markdown,
    plot_windows,
    ratio_to_best_peer,
    slug,
    table,
)
from worker.settings import Settings


@dataclass(frozen=True)
class EvalOptions:
    """What to run and where to write it."""

    paths: list[Path]
    settings: Settings
    device: str = "cpu"
    synthetic_events: int = 0
    batch_size: int = 32
    limit: int | None = None
    methods: tuple[str, ...] = ("recstream", "most-popular", "recent-popular", "isgd", "als")
    recent_windows: tuple[int, ...] = (3_000, 10_000, 30_000)  # one peer per window
    isgd: IsgdConfig = field(default_factory=IsgdConfig)
    als: AlsConfig = field(default_factory=AlsConfig)
    synthetic_als_every: int | None = None  # ALS refit interval on the synthetic stream
    windows: int = 20
    threads: int = 1
    kafka_check: int = 0
    out: Path | None = None
    img_dir: Path = Path("docs/img")
    command: str = ""


def load_streams(options: EvalOptions) -> list[Stream]:
    """The files (first `limit` events each) and the drifting synthetic stream if asked."""
    streams = [load_file(path, options.limit) for path in options.paths]
    if options.synthetic_events:
        streams.append(drifting(options.synthetic_events))
    return streams


def engine_settings(options: EvalOptions) -> Settings:
    """The worker's settings with the eval's list length and device."""
    return options.settings.model_copy(update={"top_k": K, "device": options.device})


def make_methods(name: str, stream: Stream, options: EvalOptions) -> list[Method]:
    """Fresh methods for one stream: one per name, recent-popular once per window."""
    if name == "recstream":
        settings = engine_settings(options)
        engine = build_engine(settings, resolve_device(settings.device))
        return [RecstreamMethod(engine, stream)]
    if name == "recent-popular":
        return [RecentPopular(stream.n_items, window) for window in options.recent_windows]
    makers: dict[str, Callable[[], Method]] = {
        "most-popular": lambda: MostPopular(stream.n_items),
        "isgd": lambda: Isgd(stream.n_users, stream.n_items, options.isgd),
        "als": lambda: PeriodicAls(stream.n_users, stream.n_items, als_config(stream, options)),
    }
    return [makers[name]()]


def als_config(stream: Stream, options: EvalOptions) -> AlsConfig:
    """ALS settings for `stream`: the synthetic stream may refit less often (it is 10x longer)."""
    if stream.name.startswith("synthetic") and options.synthetic_als_every:
        return replace(options.als, every=options.synthetic_als_every)
    return options.als


def run_stream(stream: Stream, options: EvalOptions) -> DatasetResult:
    """Every method on one stream, printing a line as each finishes."""
    outcomes: list[Outcome] = []
    for method in (m for name in options.methods for m in make_methods(name, stream, options)):
        outcome = evaluate(stream, method, options.batch_size, windows=options.windows)
        outcomes.append(outcome)
        print(
            f"  {stream.name:<24} {outcome.method:<28} HR@{K} {outcome.headline.hr:.4f} "
            f"NDCG@{K} {outcome.headline.ndcg:.4f} MRR {outcome.headline.mrr:.4f} "
            f"({outcome.seconds:.1f} s)",
            flush=True,
        )
    return DatasetResult(
        name=stream.name,
        events=len(stream),
        users=stream.n_users,
        items=stream.n_items,
        headline_events=int(stream.headline.sum()),
        outcomes=outcomes,
    )


NOTES = (
    "Reading the numbers:",
    "",
    (
        "- A user the method has not learned yet (e.g. one whose earlier events are all in the "
        "same batch) gets that method's cold-start list: recstream's is the one it publishes "
        "under `RECSTREAM_REDIS_COLD_START_KEY` (items by learned bias), the peers' is "
        "their popularity (ALS and ISGD fall back to most-popular)."
    ),
    (
        "- recstream excludes the last `RECSTREAM_SEEN_HISTORY` clicks of a user (its production "
        "rule); the peers exclude everything the user clicked."
    ),
    (
        "- re-consumed (hits): events re-clicking an item the user clicked before, left out of "
        "the headline; hits on them come from a repeat inside one batch (seen items are known "
        "from the batches before) and, for recstream, from clicks older than its seen history."
    ),
    (
        "- The ALS refit interval is set so `make eval` fits in about 15 minutes on 2 shared "
        "cores: 10 refits on each MovieLens file and on the synthetic stream (64 factors, "
        "15 iterations). Refitting more often costs linearly."
    ),
    (
        "- recstream runs on the Settings defaults plus the `RECSTREAM_*` environment "
        "(`make eval`'s `EVAL_ENV`: the replay's popularity clock and seen history), ranked as the "
        "worker publishes; how its defaults were chosen is in the hand-written part below."
    ),
)


def header(options: EvalOptions, seconds: float) -> list[str]:
    """Title, command, machine, date and every hyper-parameter used."""
    from worker.bench.report import machine

    settings = engine_settings(options)
    info = machine(resolve_device(settings.device))
    negatives = settings.negatives or "unset (128 on a CPU)"
    return [
        "# Accuracy: prequential evaluation of recstream against peers",
        "",
        (
            "Written by `recstream eval` (worker/evaluate/), down to the hand-written part at "
            "the end, which it keeps."
        ),
        "",
        f"- command: `{options.command}` ({seconds / 60:.1f} minutes)",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        (
            f"- machine: {info['cpu']}; GPU: {info['gpu']}; torch {info['torch']}; "
            f"Python {info['python']}"
        ),
        (
            f"- protocol: micro-batches of {options.batch_size} events in time order; each "
            f"batch is scored on every user's top-{K} list from the model as it stands before "
            "the batch (seen items excluded), then learned. HR/NDCG/MRR count events of users "
            "with an earlier event and items new to them; re-consumptions are counted apart. "
            "Coverage: distinct items in any scored list / items in the stream. "
            f"{options.windows} windows in the plots."
        ),
        (
            f"- recstream (Engine from Settings, `RECSTREAM_*` applies): dim {settings.dim}, "
            f"learning rate {settings.learning_rate}, negatives {negatives}, l2 {settings.l2}, "
            f"recent items {settings.recent_items}, popularity prior weight "
            f"{settings.popularity_weight} tau {settings.popularity_tau:g} "
            f"({settings.popularity_clock} clock), bias decay {settings.bias_decay}, "
            f"seen history {settings.seen_history}, "
            f"index {settings.index_kind}, "
            f"seed {settings.seed}, device {settings.device}"
        ),
        "- recent-popular: one peer per window, last "
        + ", ".join(f"{w:,}" for w in options.recent_windows)
        + " events",
        (
            f"- ISGD: k {options.isgd.factors}, lr {options.isgd.learning_rate}, "
            f"reg {options.isgd.regularization}, init std {options.isgd.init_std}"
        ),
        (
            f"- ALS (implicit, CPU): refit on all history every {options.als.every:,} events, "
            f"{options.als.factors} factors, {options.als.iterations} iterations, "
            f"reg {options.als.regularization}, alpha {options.als.alpha}, "
            f"{options.als.threads} threads; users/items not in the latest fit get most-popular"
            + (
                f"; on the synthetic stream every {options.synthetic_als_every:,} events"
                if options.synthetic_als_every
                else ""
            )
        ),
        (
            "- events/s: the method's own time (lists + learning) over the stream, one process, "
            f"methods run one after another; torch on {options.threads} thread(s), ALS on "
            f"{options.als.threads} (BLAS on one, as implicit advises)"
        ),
        "",
        *NOTES,
    ]


def limit_threads(threads: int) -> contextlib.AbstractContextManager[object]:
    """Run torch and numpy's BLAS on `threads`: on a busy 2-core box spinning pools cost 10x."""
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the `eval` extra brings it; without it BLAS keeps its default
        return contextlib.nullcontext()
    return threadpool_limits(threads)


def run_eval(options: EvalOptions) -> list[DatasetResult]:
    """Evaluate, print the per-dataset tables and ratios, and write the page and plots."""
    with limit_threads(options.threads):
        return _run_eval(options)


def _run_eval(options: EvalOptions) -> list[DatasetResult]:
    started = time.perf_counter()
    results = []
    for stream in load_streams(options):
        print(f"{stream.name}: {len(stream):,} events", flush=True)
        result = run_stream(stream, options)
        if options.out is not None:
            plot = options.img_dir / f"accuracy-{slug(stream.name)}.png"
            drift = 0.5 if stream.name.startswith("synthetic") else None
            plot_windows(result, plot, drift)
            result = DatasetResult(**{**result.__dict__, "plot": plot})
        results.append(result)
    extra: list[str] = []
    if options.kafka_check and options.paths:
        check_stream = load_file(options.paths[0], options.kafka_check)
        print(f"through-Kafka check: {check_stream.name}, {len(check_stream):,} events", flush=True)
        from worker.evaluate.compare import kafka_comparison, kafka_section

        check = kafka_comparison(check_stream, options)
        extra = kafka_section(check)
        print("\n".join(table(check)))
    print("\nSummary")
    for result in results:
        print(f"\n{result.name}")
        print("\n".join(table(result)))
        print(f"recstream HR@{K} / best peer HR@{K}: {ratio_to_best_peer(result):.2f}")
    if options.out is not None:
        doc_dir = options.out.parent
        page = markdown(results, header(options, time.perf_counter() - started), doc_dir, extra)
        options.out.parent.mkdir(parents=True, exist_ok=True)
        existing = options.out.read_text() if options.out.exists() else None
        options.out.write_text(keep_hand_written(page, existing))
        print(f"\nwrote {options.out}", file=sys.stderr)
    return results
