"""In process against through Kafka: the same replay, the Engine's lists against Redis's."""

from __future__ import annotations

import uuid

from models.device import resolve_device
from worker.app import build_engine
from worker.config.settings import Settings
from worker.tools.evaluate.data import Stream
from worker.tools.evaluate.engine_method import RecstreamMethod
from worker.tools.evaluate.options import EvalOptions, engine_settings
from worker.tools.evaluate.protocol import Outcome, evaluate
from worker.tools.evaluate.report import DatasetResult, table
from worker.tools.evaluate.running import limit_threads, load_streams

SCALE_OUT_PARTITIONS = 12  # as the scale-out tests and docker-compose: even for 2, 3, 4, 6 workers


def wire_settings(
    settings: Settings,
    bootstrap: str,
    redis_url: str,
    tag: str,
    batch_size: int,
    workers: int = 1,
) -> Settings:
    """`settings` pointed at a broker and Redis, with a private topic, group and keys.

    One worker: one partition, which keeps the file's order inside a batch, and
    a long idle wait, since the worker is stepped only once the batch is on the
    broker. Several: scale-out on `SCALE_OUT_PARTITIONS` (order is kept per user,
    the key), and the default short idle wait, since each worker turns on its
    own thread and its item sync waits on that turn.
    """
    from worker.testing.private import PrivateNames, private_settings

    alone = workers == 1
    return private_settings(
        bootstrap,
        redis_url,
        PrivateNames.fresh("eval", tag),
        settings,
        kafka_topic_partitions=1 if alone else max(SCALE_OUT_PARTITIONS, workers),
        scale_out=not alone,
        redis_ttl_s=3_600,
        batch_size=batch_size,
        batch_ms=2_000 if alone else 50,
        checkpoint_dir=None,
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


def through_kafka(
    stream: Stream, settings: Settings, options: EvalOptions, workers: int = 1
) -> Outcome:
    """The replay through the broker, `workers` workers and Redis that `settings` point at."""
    from worker.tools.evaluate.through_kafka import ThroughKafka

    method = ThroughKafka(settings, stream, workers)
    try:
        outcome = evaluate(stream, method, options.batch_size, windows=options.windows)
    finally:
        method.close()
    seen = method.batches_seen
    if workers == 1:
        split = sum(1 for n in seen if n != 1)
        print(f"  through Kafka: {split} of {len(seen)} batches split by the worker")
    else:  # each worker takes its users' part of every batch
        print(
            f"  through Kafka, {workers} workers: "
            f"{sum(seen) / len(seen):.2f} worker batches per batch"
        )
    return outcome


def kafka_comparison(stream: Stream, options: EvalOptions) -> DatasetResult:
    """In process against through Kafka (one worker, then `options.workers` if more).

    On embedded Tansu and Valkey; each run has its own topic, group and keys.
    """
    from worker.testing.embedded import embedded_servers

    outcomes = in_process_pair(stream, options)
    counts = [1] if options.workers == 1 else [1, options.workers]
    with embedded_servers() as (kafka, redis):
        for workers in counts:
            settings = wire_settings(
                engine_settings(options),
                kafka.bootstrap,
                redis.url,
                uuid.uuid4().hex[:8],
                options.batch_size,
                workers,
            )
            outcomes.append(through_kafka(stream, settings, options, workers))
    return DatasetResult.of(stream, outcomes, f"{stream.name}, first {len(stream):,} events")


def run_through_kafka(options: EvalOptions) -> list[DatasetResult]:
    """`--through-kafka`: each stream in process and through the broker, worker and Redis."""
    results = []
    with limit_threads(options.threads):
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
