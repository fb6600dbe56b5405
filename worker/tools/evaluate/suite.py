"""`recstream eval`: every method over every stream, a summary, and docs/accuracy.md."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable

from models.device import resolve_device
from worker.app import build_engine
from worker.tools.evaluate.data import DRIFT_AT, Stream, load_file
from worker.tools.evaluate.engine_method import RecstreamMethod
from worker.tools.evaluate.knn import ItemKnn
from worker.tools.evaluate.options import EvalOptions, engine_settings
from worker.tools.evaluate.page import header
from worker.tools.evaluate.peers import Isgd, MostPopular, PeriodicAls, RecentPopular
from worker.tools.evaluate.protocol import K, Method, Outcome, evaluate
from worker.tools.evaluate.report import (
    DatasetResult,
    ahead_line,
    keep_hand_written,
    markdown,
    plot_windows,
    ratio_to_best_peer,
    slug,
    table,
)
from worker.tools.evaluate.running import limit_threads, load_streams
from worker.tools.progress import bar

__all__ = ["run_eval"]


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
        "item-knn": lambda: ItemKnn(stream.n_users, stream.n_items, options.knn),
        "als": lambda: PeriodicAls(stream.n_users, stream.n_items, options.als),
    }
    return [makers[name]()]


def run_stream(stream: Stream, options: EvalOptions) -> DatasetResult:
    """Every method on one stream, printing a line as each finishes."""
    outcomes: list[Outcome] = []
    for method in (m for name in options.methods for m in make_methods(name, stream, options)):
        with bar(len(stream), f"{stream.name} {method.name}", quiet=options.quiet) as shown:
            outcome = evaluate(
                stream, method, options.batch_size, windows=options.windows, progress=shown.update
            )
        outcomes.append(outcome)
        print(
            f"  {stream.name:<24} {outcome.method:<28} HR@{K} {outcome.headline.hr:.4f} "
            f"NDCG@{K} {outcome.headline.ndcg:.4f} MRR {outcome.headline.mrr:.4f} "
            f"long-horizon HR@{K} {outcome.long_horizon:.4f} "
            f"({outcome.seconds:.1f} s)",
            flush=True,
        )
    return DatasetResult.of(stream, outcomes)


def ablate(stream: Stream, options: EvalOptions) -> list[str]:
    """The ablations' table for `stream` (its first `options.ablations` events)."""
    from worker.engine.threads import available_cpus
    from worker.tools.evaluate.ablations import ablation_lines, run_ablations

    events = min(options.ablations, len(stream))
    print(f"  {stream.name}: ablations on the first {events:,} events", flush=True)
    # side by side on a CPU's cores; one GPU takes one process's replays at a time
    processes = 1 if options.device.startswith("cuda") else available_cpus()
    ablations = run_ablations(
        stream, engine_settings(options), events, options.batch_size, processes
    )
    return ablation_lines(ablations, events)


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
        if options.ablations:
            result = dataclasses.replace(result, ablations=tuple(ablate(stream, options)))
        if options.out is not None:
            plot = options.plots / f"accuracy-{slug(stream.name)}.png"
            drift = DRIFT_AT if stream.name.startswith("synthetic") else None
            plot_windows(result, plot, drift)
            result = DatasetResult(**{**result.__dict__, "plot": plot})
        results.append(result)
    extra: list[str] = []
    if options.kafka_check and options.paths:
        check_stream = load_file(options.paths[0], options.kafka_check)
        print(f"through-Kafka check: {check_stream.name}, {len(check_stream):,} events", flush=True)
        from worker.tools.evaluate.compare import kafka_comparison, kafka_section

        check = kafka_comparison(check_stream, options)
        extra = kafka_section(check)
        print("\n".join(table(check)))
    print("\nSummary")
    for result in results:
        print(f"\n{result.name}")
        print("\n".join(table(result)))
        print(
            f"recstream HR@{K} / best peer HR@{K}: {ratio_to_best_peer(result):.2f} next click, "
            f"{ratio_to_best_peer(result, long_horizon=True):.2f} long horizon"
        )
        if ahead := ahead_line(result):
            print(ahead.replace("**", ""))
        if result.ablations:
            print("\n".join(result.ablations))
    if options.out is not None:
        doc_dir = options.out.parent
        page = markdown(results, header(options, time.perf_counter() - started), doc_dir, extra)
        options.out.parent.mkdir(parents=True, exist_ok=True)
        existing = options.out.read_text() if options.out.exists() else None
        options.out.write_text(keep_hand_written(page, existing))
        print(f"\nwrote {options.out}", file=sys.stderr)
    return results
