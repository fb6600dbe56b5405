"""`recstream eval` and `recstream eval-warm`: the evaluation's options, beside the harness.

Loaded for `recstream --help`, so only click and the names (`names.py`) at the top;
the harness (numpy, torch, the peers) is imported once a command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from worker.commands.common import CommaList, settings_or_exit, tool_logging
from worker.tools.evaluate.names import METHOD_NAMES, SYNTHETIC

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("eval")
@click.argument("paths", nargs=-1, type=_FILE)
@click.option(
    "--synthetic-events",
    type=int,
    default=0,
    show_default=True,
    help="Also generated streams of N events each whose tastes drift half-way (0: none).",
)
@click.option(
    "--synthetic",
    type=CommaList(click.Choice(SYNTHETIC), empty=True),
    default=",".join(SYNTHETIC),
    show_default=True,
    help="Comma-separated generated streams for --synthetic-events: genres (the demo's genre "
    "tastes, redrawn) and/or clusters (1-3 item clusters per user, moving to new ones).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Events per micro-batch (the worker's batch at ~640 events/s and RECSTREAM_BATCH_MS=50).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Only the first N events of each file.",
)
@click.option(
    "--methods",
    type=CommaList(click.Choice(METHOD_NAMES)),
    default=",".join(METHOD_NAMES),
    show_default=True,
    help="Comma-separated subset to run.",
)
@click.option("--device", default="cpu", show_default=True, help="recstream's device.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="torch and ALS threads.",
)
@click.option(
    "--recent-windows",
    type=CommaList(click.IntRange(min=1)),
    default="3000,10000,30000",
    show_default=True,
    help="Comma-separated windows (events); one recent-popular peer each.",
)
@click.option("--isgd-k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--isgd-lr", type=float, default=0.05, show_default=True)
@click.option("--isgd-reg", type=float, default=0.01, show_default=True)
@click.option(
    "--knn-window",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="item-kNN: each click is paired with the user's previous N clicks.",
)
@click.option(
    "--knn-recent",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="item-kNN: a user's list is scored over their last N clicks.",
)
@click.option(
    "--knn-alpha",
    type=float,
    default=0.0,
    show_default=True,
    help="item-kNN: candidate scores divided by their popularity ** alpha.",
)
@click.option(
    "--als-every",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="ALS refit interval (events), on every stream.",
)
@click.option("--als-factors", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--als-iterations", type=click.IntRange(min=1), default=15, show_default=True)
@click.option("--als-reg", type=float, default=0.01, show_default=True)
@click.option("--windows", type=click.IntRange(min=1), default=20, show_default=True)
@click.option(
    "--through-kafka",
    is_flag=True,
    help="Only recstream: in process against the same replay through Kafka and Redis.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Through Kafka: also N scale-out workers on a 12-partition topic, beside one worker.",
)
@click.option(
    "--kafka-check",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also the through-Kafka comparison on the first N events of the first file.",
)
@click.option(
    "--ablations",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also recstream with each source left out and each feature group zeroed, one at a "
    "time, on the first N events of each stream (0: none); side by side on the CPUs.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the markdown page here (plots go to --img-dir).",
)
@click.option(
    "--img-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the plots go (default: img/ beside --out).",
)
@click.option("--quiet", is_flag=True, help="No progress bars (none either when not a terminal).")
def evaluate(
    paths: tuple[Path, ...],
    synthetic_events: int,
    synthetic: tuple[str, ...],
    batch_size: int,
    limit: int | None,
    methods: tuple[str, ...],
    device: str,
    threads: int,
    recent_windows: tuple[int, ...],
    isgd_k: int,
    isgd_lr: float,
    isgd_reg: float,
    knn_window: int,
    knn_recent: int,
    knn_alpha: float,
    als_every: int,
    als_factors: int,
    als_iterations: int,
    als_reg: float,
    windows: int,
    through_kafka: bool,
    workers: int,
    kafka_check: int,
    ablations: int,
    out: Path | None,
    img_dir: Path | None,
    quiet: bool,
) -> None:
    """Prequential HR/NDCG/MRR@10 of the Engine and its peers on timestamped files."""
    if synthetic_events and not synthetic:
        raise click.BadParameter(
            f"with --synthetic-events, choose at least one of {', '.join(SYNTHETIC)}",
            param_hint="'--synthetic'",
        )
    if not paths and not synthetic_events:
        raise click.UsageError("give at least one file or --synthetic-events")
    if through_kafka and ablations:
        raise click.UsageError("--ablations replays in process: run it without --through-kafka")
    from worker.tools.evaluate.compare import run_through_kafka
    from worker.tools.evaluate.knn import KnnConfig
    from worker.tools.evaluate.options import EvalOptions
    from worker.tools.evaluate.peers import AlsConfig, IsgdConfig
    from worker.tools.evaluate.suite import run_eval

    settings = settings_or_exit()
    tool_logging("warning")
    options = EvalOptions(
        paths=list(paths),
        settings=settings,
        device=device,
        synthetic_events=synthetic_events,
        synthetic=synthetic,
        batch_size=batch_size,
        limit=limit,
        methods=methods,
        recent_windows=recent_windows,
        isgd=IsgdConfig(factors=isgd_k, learning_rate=isgd_lr, regularization=isgd_reg),
        knn=KnnConfig(window=knn_window, recent=knn_recent, alpha=knn_alpha),
        als=AlsConfig(
            every=als_every,
            factors=als_factors,
            iterations=als_iterations,
            regularization=als_reg,
            threads=threads,
        ),
        windows=windows,
        threads=threads,
        kafka_check=kafka_check,
        ablations=ablations,
        workers=workers,
        out=out,
        img_dir=img_dir,
        command="recstream eval " + " ".join(sys.argv[2:]),
        quiet=quiet,
    )
    if through_kafka:
        run_through_kafka(options)
    else:
        run_eval(options)


@click.command("eval-warm")
@click.argument("path", type=_FILE)
@click.option("--prefix", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--events", type=click.IntRange(min=1), default=10_000, show_default=True)
def eval_warm(path: Path, prefix: int, events: int) -> None:
    """HR@10 after a prefix: cold, warm from the prefix's ALS vectors, prefix replayed online."""
    from worker.tools.evaluate.running import limit_threads
    from worker.tools.evaluate.warm import run_warm_eval

    settings = settings_or_exit()
    tool_logging("warning")
    with limit_threads(1):
        result = run_warm_eval(path, settings, prefix, events)
    click.echo(f"{path}: {result.events:,} events after a {result.prefix:,}-event prefix")
    for start, hr in result.hr.items():
        click.echo(f"  {start:<32} HR@10 {hr:.4f}")
