"""Run the whole benchmark suite on embedded servers and write the report."""

from __future__ import annotations

import datetime as dt
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import structlog

from models.device import resolve_device
from worker.testing.embedded import start_kafka, start_redis
from worker.testing.synthetic import generate
from worker.tools.bench import path as whole
from worker.tools.bench import stages
from worker.tools.bench.rank import bench_rank
from worker.tools.bench.report import machine, markdown, plot_latency
from worker.tools.bench.stages import Row
from worker.tools.bench.startup import bench_help
from worker.tools.progress import bar
from worker.tools.replay import Interactions, read_interactions

log = structlog.get_logger("recstream.bench")


@dataclass(frozen=True)
class BenchOptions:
    """What to run and where to write it."""

    device: str = "auto"
    quick: bool = False
    data: Path | None = None
    out: Path = Path("docs/benchmarks.md")
    plot: Path = Path("docs/img/bench-cpu.png")
    title: str = "CPU"
    quiet: bool = False  # no progress bar


def _interactions(path: Path | None, quick: bool) -> tuple[Interactions, str]:
    if path is not None and path.exists():
        data = read_interactions(path)
        parent = path.parent.name
        name = parent if parent and not parent.startswith(".") else path.name
    else:
        stream = generate(100_000, users=5_000, items=2_000)
        data = Interactions(
            [f"u{u}" for u in stream.users], [f"i{i}" for i in stream.items], stream.ts
        )
        name = "synthetic 100k"
    if quick:
        data = Interactions(data.users[:30_000], data.items[:30_000], data.ts[:30_000])
        name += " (first 30k)"
    return data, name


class _Stages:
    """Logs each stage as it starts and moves the bar on as the previous one ends."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.progress = bar(total, "bench", quiet=quiet, unit="stage")
        self.started = 0

    def __call__(self, name: str, **fields: object) -> None:
        if self.started:
            self.progress.update(1)
        self.started += 1
        self.progress.set_postfix_str(name)
        log.info("bench_stage", stage=name, **fields)


def _latency(
    bootstrap: str, redis_url: str, device: str, loads: list[int], seconds: float, stage: _Stages
) -> list[dict[str, float]]:
    """Click→Redis latency at each offered load, the pass-through floor beside it."""
    points = []
    for rate in loads:
        stage("latency", offered=rate)
        point = whole.latency_at_load(bootstrap, redis_url, device, rate, seconds)
        if rate:  # the floor beside it, same load, same run
            floor = whole.pass_through_at_load(bootstrap, redis_url, rate, seconds)
            point |= {f"pass_{key}": value for key, value in floor.items()}
        points.append(point)
    return points


def run_bench(options: BenchOptions) -> list[Row]:  # noqa: PLR0915
    """Measure every stage, the whole path, the baselines; write markdown and a PNG."""
    device = resolve_device(options.device)
    quick = options.quick
    repeats = 3 if quick else 5
    gpu = device.type == "cuda"
    kafka, redis = start_kafka(), start_redis()
    rows: list[Row] = []
    latency: list[dict[str, float]] = []
    # offered events/s; 0: flat out, the saturation run (no pass-through beside it)
    loads = [1_000, 10_000] if quick else [1_000, 5_000, 10_000, 0]
    stage = _Stages(7 + len(loads), options.quiet)
    try:
        stage("decode")  # with what a process costs to start (`--help`, CPU seconds)
        rows += [*bench_help(repeats), *stages.bench_decode(20_000 if quick else 100_000, repeats)]
        stage("learn")
        sizes = [1024, 16_384] if quick else [256, 1024, 4096, 16_384, 65_536]
        rows += stages.bench_learner(device, sizes, repeats)
        stage("search")
        items = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
        dims = [64] if quick else [32, 64, 128]
        queries = 10_000 if gpu else 1_024
        rows += stages.bench_search(device, items, dims, queries, 50, repeats)
        stage("rank")
        rows += bench_rank(
            device, [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000], repeats
        )
        stage("publish")
        rows += stages.bench_publish(redis.url, [10, 50, 100], 10_000 if quick else 20_000, repeats)

        data, name = _interactions(options.data, quick)
        topic = whole.prefill(kafka.bootstrap, data)
        stage("ingest", events=len(data))
        # Interleaved repeats, medians of each: this machine's neighbours are noisy.
        drains_n = 1 if quick else repeats
        ingests = [whole.ingest(kafka.bootstrap, topic, len(data))[0] for _ in range(drains_n)]
        rows.append(
            stages.Row(
                "ingest",
                "consume + decode",
                statistics.median(r.rate for r in ingests),
                "events/s",
                ingests[0].baseline,
                statistics.median(r.baseline_rate for r in ingests),
                f"median of {drains_n} interleaved drains",
            )
        )
        stage("whole_path")
        drains, rivers = [], []
        for _ in range(1 if quick else 3):  # interleaved, so drift hits both alike
            drains.append(
                whole.whole_path(kafka.bootstrap, redis.url, str(device), topic, len(data))
            )
            rivers.append(whole.river_learn_only(data, len(data)))
        path_rate, river_rate = statistics.median(drains), statistics.median(rivers)
        naive_rate = whole.naive(kafka.bootstrap, redis.url, topic, 500 if quick else 2_000)
        for against, rate, note in (
            ("naive worker (one event at a time)", naive_rate, ""),
            (
                "River FunkMF.learn_one (learns only)",
                river_rate,
                "recstream learns, ranks, publishes and commits",
            ),
        ):
            rows.append(Row("path", f"drain {name}", path_rate, "events/s", against, rate, note))
        seconds = 3.0 if quick else 5.0
        latency = _latency(kafka.bootstrap, redis.url, str(device), loads, seconds, stage)
    finally:
        stage.progress.close()
        redis.stop()
        kafka.stop()
    plot_path = None
    if latency:
        plot_latency(latency, options.plot, f"recstream on {options.title}")
        plot_path = str(Path("img") / options.plot.name)
    info = {
        "title": options.title,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["recstream", *sys.argv[1:]]),
        "machine": machine(device),
        "repeats": repeats,
        "device": device.type,  # the floor's self-check is judged on a CPU machine
    }
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(markdown(rows, latency, info, plot_path))
    return rows


__all__ = ["BenchOptions", "run_bench"]
