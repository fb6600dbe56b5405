"""`recstream eval`: every method over every stream, a summary, and docs/accuracy.md."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
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
    batch_size: int = 256
    limit: int | None = None
    methods: tuple[str, ...] = ("recstream", "most-popular", "recent-popular", "isgd", "als")
    recent_window: int = 10_000
    isgd: IsgdConfig = field(default_factory=IsgdConfig)
    als: AlsConfig = field(default_factory=AlsConfig)
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


def make_method(name: str, stream: Stream, options: EvalOptions) -> Method:
    """A fresh method for one stream."""
    if name == "recstream":
        settings = engine_settings(options)
        engine = build_engine(settings, resolve_device(settings.device))
        return RecstreamMethod(engine, stream)
    makers: dict[str, Callable[[], Method]] = {
        "most-popular": lambda: MostPopular(stream.n_items),
        "recent-popular": lambda: RecentPopular(stream.n_items, options.recent_window),
        "isgd": lambda: Isgd(stream.n_users, stream.n_items, options.isgd),
        "als": lambda: PeriodicAls(stream.n_users, stream.n_items, options.als),
    }
    return makers[name]()


def run_stream(stream: Stream, options: EvalOptions) -> DatasetResult:
    """Every method on one stream, printing a line as each finishes."""
    outcomes: list[Outcome] = []
    for name in options.methods:
        method = make_method(name, stream, options)
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


def wire_settings(
    settings: Settings, bootstrap: str, redis_url: str, tag: str, batch_size: int
) -> Settings:
    """`settings` pointed at a broker and Redis, with a private topic, group and key prefix."""
    from worker.settings import KafkaSettings, RedisSettings

    return settings.model_copy(
        update={
            "kafka": KafkaSettings(
                bootstrap=bootstrap,
                topic=f"eval-{tag}",
                dlq_topic=f"eval-{tag}.dlq",
                group=f"eval-{tag}",
                topic_partitions=1,  # one partition keeps the file's order inside a batch
                session_timeout_ms=6_000,
            ),
            "redis": RedisSettings(url=redis_url, prefix=f"eval-{tag}:", ttl_s=3_600),
            "batch_size": batch_size,
            "batch_ms": 2_000,  # the whole batch is on the broker before the worker polls
            "metrics_port": 0,
            "checkpoint_dir": None,
        }
    )


def in_process_pair(stream: Stream, options: EvalOptions) -> list[Outcome]:
    """Recstream in process, reading fresh lists and reading the lists it published."""
    settings = engine_settings(options)
    outcomes = []
    for published in (False, True):
        engine = build_engine(settings, resolve_device(settings.device))
        method = RecstreamMethod(engine, stream, published=published)
        outcomes.append(evaluate(stream, method, options.batch_size, windows=options.windows))
    return outcomes


def through_kafka(stream: Stream, settings: Settings, options: EvalOptions) -> Outcome:
    """The replay through the broker, the worker and Redis that `settings` point at."""
    from worker.evaluate.kafka import ThroughKafka

    method = ThroughKafka(settings, stream)
    try:
        outcome = evaluate(stream, method, options.batch_size, windows=options.windows)
    finally:
        method.close()
    split = sum(1 for n in method.batches_seen if n != 1)
    print(f"  through Kafka: {split} of {len(method.batches_seen)} batches split by the worker")
    return outcome


def kafka_comparison(stream: Stream, options: EvalOptions) -> DatasetResult:
    """In process against through Kafka, on embedded Tansu and Valkey."""
    from worker.embedded import embedded_servers

    outcomes = in_process_pair(stream, options)
    with embedded_servers() as (kafka, redis):
        settings = wire_settings(
            engine_settings(options),
            kafka.bootstrap,
            redis.url,
            uuid.uuid4().hex[:8],
            options.batch_size,
        )
        outcomes.append(through_kafka(stream, settings, options))
    return DatasetResult(
        name=f"{stream.name}, first {len(stream):,} events",
        events=len(stream),
        users=stream.n_users,
        items=stream.n_items,
        headline_events=int(stream.headline.sum()),
        outcomes=outcomes,
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
        "Written by `recstream eval` (worker/evaluate/); do not edit by hand.",
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
            f"seen history {settings.seen_history}, index {settings.index_kind}, "
            f"seed {settings.seed}, device {settings.device}"
        ),
        f"- recent-popular: last {options.recent_window:,} events",
        (
            f"- ISGD: k {options.isgd.factors}, lr {options.isgd.learning_rate}, "
            f"reg {options.isgd.regularization}, init std {options.isgd.init_std}"
        ),
        (
            f"- ALS (implicit, CPU): refit on all history every {options.als.every:,} events, "
            f"{options.als.factors} factors, {options.als.iterations} iterations, "
            f"reg {options.als.regularization}, alpha {options.als.alpha}, "
            f"{options.als.threads} threads; users/items not in the latest fit get most-popular"
        ),
        (
            "- events/s: the method's own time (lists + learning) over the stream, one process, "
            f"methods run one after another; torch on {options.threads} thread(s), ALS on "
            f"{options.als.threads} (BLAS on one, as implicit advises)"
        ),
    ]


def run_eval(options: EvalOptions) -> list[DatasetResult]:
    """Evaluate, print the per-dataset tables and ratios, and write the page and plots."""
    started = time.perf_counter()
    torch.set_num_threads(options.threads)
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
        options.out.write_text(page)
        print(f"\nwrote {options.out}", file=sys.stderr)
    return results


def run_through_kafka(options: EvalOptions) -> list[DatasetResult]:
    """`--through-kafka`: each stream in process and through the broker, worker and Redis."""
    torch.set_num_threads(options.threads)
    results = []
    for stream in load_streams(options):
        print(f"{stream.name}: {len(stream):,} events", flush=True)
        result = kafka_comparison(stream, options)
        print("\n".join(table(result)))
        results.append(result)
    return results


def kafka_section(check: DatasetResult) -> list[str]:
    """The through-Kafka agreement table for the page."""
    return [
        "## Through Kafka and Redis against in process",
        "",
        (
            f"The same replay ({check.name}) through the embedded Tansu broker, the worker "
            "(in process, `build_worker`, batch size = the eval's, one partition) and Valkey: "
            "each batch is produced, the worker steps until it has committed it, then the next "
            "batch's users' lists are read from Redis and scored by the same code. Redis holds "
            "the list published after each user's last batch, so it matches the in-process "
            "`published lists` reading; `recstream` (fresh lists from the model before the "
            "batch) is the protocol's reading used in the tables above."
        ),
        "",
        *table(check),
        "",
    ]
