"""The `recstream` command: run, replay, demo, healthcheck. The only place that parses arguments."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from structlog.stdlib import BoundLogger

    from worker.loop import Worker
    from worker.metrics import HealthServer
    from worker.settings import Settings


def _log() -> BoundLogger:
    """The CLI's logger; structlog (and the asyncio it loads) only once a command runs."""
    import structlog

    logger: BoundLogger = structlog.get_logger("recstream.cli")
    return logger


@contextlib.contextmanager
def exit_2_on_error(event: str, **fields: object) -> Iterator[None]:
    """A tool's expected failure (a bad file, a broker away): one log line, exit 2, no trace."""
    from recstream.errors import RecstreamError

    try:
        yield
    except RecstreamError as exc:
        _log().error(event, error=str(exc), **fields)
        sys.exit(2)


def configure_logging(fmt: str, level: str) -> None:
    """`worker.logs.configure_logging`, imported when a command needs it, not for --help."""
    from worker.logs import configure_logging as configure

    configure(fmt, level)


# The methods `recstream eval` knows (kept here so --help needs no numpy or torch import).
METHOD_NAMES = ("recstream", "most-popular", "recent-popular", "isgd", "item-knn", "als")
SYNTHETIC_NAMES = ("genres", "clusters")  # worker.tools.evaluate.data.SYNTHETIC, without numpy


def settings_or_exit() -> Settings:
    """The settings from the environment, or the bad variables on stderr and exit 2.

    Imported here, not at the top: pydantic alone would double the time `--help` takes.
    """
    from worker.errors import SettingsError
    from worker.settings import load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


@click.group()
def main() -> None:
    """recstream: clicks from Kafka, online learning, FAISS, fresh top-K lists in Redis."""


@main.command()
def run() -> None:
    """Run the worker until SIGTERM (settings from RECSTREAM_* variables)."""
    settings = settings_or_exit()
    configure_logging(settings.log_format, settings.log_level)
    from recstream.errors import RecstreamError
    from worker.app import build_worker
    from worker.errors import StartupError
    from worker.metrics import HealthServer, WorkerMetrics

    metrics = WorkerMetrics()
    health = None
    if settings.metrics_port:
        try:  # bound before anything else starts: a port in use is a bad start, not a traceback
            health = HealthServer(settings.metrics_port, metrics)
        except OSError as exc:
            _log().error(
                "startup_failed",
                error=f"cannot listen on port {settings.metrics_port}: {exc.strerror or exc}",
                variable="RECSTREAM_METRICS_PORT",
            )
            sys.exit(2)
    try:
        worker = build_worker(settings, metrics)
    except StartupError as exc:
        _log().error("startup_failed", error=str(exc), **exc.fields)
        _close(health)
        sys.exit(2)
    except RecstreamError as exc:  # a known failure: one line, its message says what to fix
        _log().error("startup_failed", error=str(exc), error_type=type(exc).__name__)
        _close(health)
        sys.exit(2)
    metrics.watch_device(worker.engine.device)
    if health:
        debug = _user_reader(worker) if settings.debug_endpoint else None
        health.start(worker.live, worker.ready, debug)
        _log().info("metrics_listening", port=health.port, debug_endpoint=debug is not None)
    try:
        code = worker.run()
    except RecstreamError as exc:
        _log().exception("worker_failed", error=str(exc))
        code = 1
    finally:
        _close(health)
    sys.exit(code)


def _user_reader(worker: Worker) -> Callable[[str], dict[str, Any] | None]:
    """`/debug/users/<id>`: the worker's live state of one user (read-only)."""
    from worker.debug import describe_user

    return lambda user: describe_user(worker.learner, worker.history, user)


def _close(health: HealthServer | None) -> None:
    if health is not None:
        health.close()


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rate", type=float, default=0.0, help="Events per second; 0 sends flat out.")
@click.option("--limit", type=int, default=None, help="Send only the first N (in time order).")
@click.option("--format", "fmt", type=click.Choice(["auto", "udata", "dat", "csv"]), default="auto")
@click.option("--quiet", is_flag=True, help="No progress bar (none either when not a terminal).")
def replay(path: Path, rate: float, limit: int | None, fmt: str, quiet: bool) -> None:
    """Send a timestamped interactions file to the clicks topic, in time order."""
    from stream.kafka import ClickProducer
    from worker.tools.replay import read_interactions, send_interactions

    settings = settings_or_exit()
    configure_logging(settings.log_format, settings.log_level)
    with exit_2_on_error("replay_failed", path=str(path)):
        data = read_interactions(path, fmt)
        producer = ClickProducer(settings.kafka.client_config(), settings.kafka.topic)
        sent = send_interactions(producer, data, rate=rate, limit=limit, quiet=quiet)
    _log().info("replay_finished", path=str(path), events=sent, topic=settings.kafka.topic)


@main.command()
@click.option("--events", type=int, default=100_000, show_default=True)
@click.option("--users", type=int, default=5_000, show_default=True)
@click.option("--items", type=int, default=2_000, show_default=True)
@click.option("--rate", type=float, default=10_000, show_default=True, help="0 = flat out.")
@click.option("--kafka", default=None, help="Use this broker instead of an embedded one.")
@click.option("--redis", default=None, help="Use this Redis URL instead of an embedded one.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON line.")
def demo(
    events: int,
    users: int,
    items: int,
    rate: float,
    kafka: str | None,
    redis: str | None,
    as_json: bool,
) -> None:
    """Stream synthetic clicks through a worker on embedded servers and report."""
    from worker.tools.demo import DemoOptions, format_report, run_demo

    configure_logging("console" if sys.stderr.isatty() else "json", "warning")
    report = run_demo(
        DemoOptions(events=events, users=users, items=items, rate=rate, kafka=kafka, redis=redis)
    )
    if as_json:
        print(json.dumps(report))
    else:
        print(format_report(report))
    ok = report["events"] == events and report["dlq"] == report["malformed_sent"]
    sys.exit(0 if ok and report["committed_to_end"] else 1)


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("docs/img/dashboard.png"),
    show_default=True,
)
@click.option("--url", default=None, help="Scrape this /metrics URL instead of running a demo.")
@click.option("--duration", type=float, default=60.0, show_default=True, help="With --url.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds per scrape.")
@click.option("--events", type=int, default=60_000, show_default=True, help="Demo clicks.")
@click.option("--rate", type=float, default=1_000.0, show_default=True, help="Demo clicks/s.")
def dashboard(
    out: Path, url: str | None, duration: float, interval: float, events: int, rate: float
) -> None:
    """Draw the Grafana dashboard's panels from /metrics scrapes (of a demo by default)."""
    from worker.tools.dashboard import DashboardOptions, run_dashboard

    configure_logging("console" if sys.stderr.isatty() else "json", "warning")
    options = DashboardOptions(out, url, duration, interval, events, rate)
    report = run_dashboard(options)
    click.echo(f"wrote {out} from {report['scrapes']} scrapes")


@main.command()
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--quick", is_flag=True, help="About a minute: fewer sizes and repeats.")
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Interactions file for the whole-path replay (default: synthetic).",
)
@click.option("--out", type=click.Path(path_type=Path), default=Path("docs/benchmarks-cpu.md"))
@click.option("--plot", type=click.Path(path_type=Path), default=Path("docs/img/bench-cpu.png"))
@click.option("--title", default="CPU", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar (none either when not a terminal).")
def bench(
    device: str, quick: bool, data: Path | None, out: Path, plot: Path, title: str, quiet: bool
) -> None:
    """Benchmark every stage and the whole path, with baselines; write markdown and a PNG."""
    from worker.tools.bench.suite import BenchOptions, run_bench

    configure_logging("console" if sys.stderr.isatty() else "json", "info")
    run_bench(BenchOptions(device, quick, data, out, plot, title, quiet))
    print(out.read_text())


@main.command("eval")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--synthetic-events",
    type=int,
    default=0,
    show_default=True,
    help="Also generated streams of N events each whose tastes drift half-way (0: none).",
)
@click.option(
    "--synthetic",
    default=",".join(SYNTHETIC_NAMES),
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
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the markdown page here (plots go to --img-dir).",
)
@click.option("--img-dir", type=click.Path(path_type=Path), default=Path("docs/img"))
@click.option("--quiet", is_flag=True, help="No progress bars (none either when not a terminal).")
def evaluate(
    paths: tuple[Path, ...],
    synthetic_events: int,
    synthetic: str,
    batch_size: int,
    limit: int | None,
    methods: str,
    device: str,
    threads: int,
    recent_windows: str,
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
    out: Path | None,
    img_dir: Path,
    quiet: bool,
) -> None:
    """Prequential HR/NDCG/MRR@10 of the Engine and its peers on timestamped files."""
    from worker.tools.evaluate.compare import run_through_kafka
    from worker.tools.evaluate.knn import KnnConfig
    from worker.tools.evaluate.options import EvalOptions
    from worker.tools.evaluate.peers import AlsConfig, IsgdConfig
    from worker.tools.evaluate.suite import run_eval

    settings = settings_or_exit()
    configure_logging("console" if sys.stderr.isatty() else "json", "warning")
    try:
        windows_of_recent = tuple(int(w) for w in recent_windows.split(",") if w.strip())
    except ValueError:
        windows_of_recent = ()
    if not windows_of_recent or min(windows_of_recent) < 1:
        click.echo(f"--recent-windows: expected integers >= 1, got {recent_windows!r}", err=True)
        sys.exit(2)
    chosen = tuple(m.strip() for m in methods.split(",") if m.strip())
    unknown = sorted(set(chosen) - set(METHOD_NAMES))
    if unknown or not chosen:
        click.echo(f"unknown methods {unknown}; choose from {', '.join(METHOD_NAMES)}", err=True)
        sys.exit(2)
    kinds = tuple(k.strip() for k in synthetic.split(",") if k.strip())
    odd = sorted(set(kinds) - set(SYNTHETIC_NAMES))
    if odd or (synthetic_events and not kinds):
        choices = ", ".join(SYNTHETIC_NAMES)
        click.echo(f"--synthetic: unknown {odd}; choose from {choices}", err=True)
        sys.exit(2)
    if not paths and not synthetic_events:
        click.echo("give at least one file or --synthetic-events", err=True)
        sys.exit(2)
    options = EvalOptions(
        paths=list(paths),
        settings=settings,
        device=device,
        synthetic_events=synthetic_events,
        synthetic=kinds,
        batch_size=batch_size,
        limit=limit,
        methods=chosen,
        recent_windows=windows_of_recent,
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


@main.command("import-vectors")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--project", is_flag=True, help="Map vectors of another width to RECSTREAM_DIM.")
@click.option("--force", is_flag=True, help="Write over an existing checkpoint (a newer one).")
def import_vectors_command(path: Path, project: bool, force: bool) -> None:
    """Warm start: write a checkpoint from an offline model's vectors (.npz of ids, matrices).

    The file holds item_ids and item_vectors, optionally item_bias, user_ids and
    user_vectors (e.g. implicit's ALS factors). The next `recstream run` starts from it.
    """
    from worker.tools.vectors import import_vectors

    settings = settings_or_exit()
    configure_logging(settings.log_format, settings.log_level)
    with exit_2_on_error("import_failed", path=str(path)):
        moved = import_vectors(settings, path, project=project, force=force)
    _log().info(
        "vectors_imported", checkpoint=str(moved.path), items=moved.items, users=moved.users
    )


@main.command("export-vectors")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def export_vectors_command(out: Path) -> None:
    """Write the newest checkpoint's item and user vectors to OUT (.npz, import's format)."""
    from worker.tools.vectors import export_to

    settings = settings_or_exit()
    configure_logging(settings.log_format, settings.log_level)
    with exit_2_on_error("export_failed", out=str(out)):
        moved = export_to(settings, out)
    _log().info("vectors_exported", path=str(out), items=moved.items, users=moved.users)


@main.command("eval-warm")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--prefix", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--events", type=click.IntRange(min=1), default=10_000, show_default=True)
def eval_warm(path: Path, prefix: int, events: int) -> None:
    """HR@10 after a prefix: cold, warm from the prefix's ALS vectors, prefix replayed online."""
    from worker.tools.evaluate.running import limit_threads
    from worker.tools.evaluate.warm import run_warm_eval

    settings = settings_or_exit()
    configure_logging("console" if sys.stderr.isatty() else "json", "warning")
    with limit_threads(1):
        result = run_warm_eval(path, settings, prefix, events)
    print(f"{path}: {result.events:,} events after a {result.prefix:,}-event prefix")
    for start, hr in result.hr.items():
        print(f"  {start:<32} HR@10 {hr:.4f}")


@main.command("inspect")
@click.argument("user")
@click.option(
    "--items",
    "items_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="An id,title CSV: show titles beside item ids.",
)
@click.option(
    "--worker",
    "worker_url",
    default=None,
    help="A running worker's metrics URL (RECSTREAM_DEBUG_ENDPOINT=true there), "
    "e.g. http://127.0.0.1:9108; else the newest checkpoint in RECSTREAM_CHECKPOINT_DIR.",
)
@click.option(
    "--checkpoint",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Read the history from this checkpoint directory instead.",
)
@click.option("--recent", type=click.IntRange(min=0), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def inspect_user(
    user: str,
    items_file: Path | None,
    worker_url: str | None,
    checkpoint: Path | None,
    recent: int,
    as_json: bool,
) -> None:
    """Show USER's list as stored in Redis and the clicks and seen history behind it."""
    from recstream.errors import RecstreamError
    from worker.tools.inspect_user import InspectError, Sources, format_report, inspect, load_titles

    settings = settings_or_exit()
    configure_logging(settings.log_format, "warning")
    sources = Sources(settings.redis, worker_url, checkpoint or settings.checkpoint.dir, recent)
    try:
        titles = load_titles(items_file) if items_file else None
        report = inspect(user, sources, titles)
    except (InspectError, RecstreamError, OSError) as exc:
        click.echo(f"inspect: {exc}", err=True)
        sys.exit(2)
    click.echo(json.dumps(report) if as_json else format_report(report))


@main.command()
@click.option("--port", type=int, default=None, help="Defaults to RECSTREAM_METRICS_PORT.")
@click.option("--ready", is_flag=True, help="Check /readyz instead of /healthz.")
def healthcheck(port: int | None, ready: bool) -> None:
    """Exit 0 when the local worker answers /healthz (or /readyz), else 1; bad settings: 2.

    An orchestrator runs this and keeps one line of what it printed, so a
    setting it cannot use is one line on stderr and exit 2, never a traceback.
    """
    import urllib.request

    if port is None:
        port = _healthcheck_port()
    path = "/readyz" if ready else "/healthz"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            sys.exit(0 if resp.status == 200 else 1)  # noqa: PLR2004
    except OSError:
        sys.exit(1)


if __name__ == "__main__":
    main()


def _healthcheck_port() -> int:
    """RECSTREAM_METRICS_PORT, or one line naming what is wrong and exit 2."""
    from worker.errors import SettingsError
    from worker.settings import load_settings

    try:
        port = load_settings().metrics_port
    except SettingsError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        click.echo(f"healthcheck: {lines[0]} {'; '.join(lines[1:])}".rstrip(), err=True)
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001  (whatever else settings raise: still one line)
        click.echo(f"healthcheck: cannot read the settings: {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)
    if port == 0:
        click.echo(
            "healthcheck: RECSTREAM_METRICS_PORT is 0 (metrics off): nothing to ask", err=True
        )
        sys.exit(2)
    return port
