"""`recstream demo`: the whole path on embedded servers, with a short report."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from index.knn import backend_for
from stream.click_producer import ClickProducer
from stream.committed import group_progress
from stream.events import ClickEvent, encode_event
from worker.app import build_worker, open_sink
from worker.loop.batch_loop import Worker
from worker.observability.metrics import HealthServer, WorkerMetrics
from worker.testing.embedded import EmbeddedKafka, EmbeddedRedis, start_kafka, start_redis
from worker.testing.private import PrivateNames, private_settings, start_on_thread
from worker.testing.synthetic import MALFORMED, SyntheticStream, generate
from worker.tools.replay import paced


@dataclass(frozen=True)
class DemoOptions:
    """What the demo generates and where it sends it."""

    events: int = 100_000
    users: int = 5_000
    items: int = 2_000
    rate: float = 10_000.0
    kafka: str | None = None
    redis: str | None = None
    timeout_s: float = 600.0
    sample_users: int = 3
    metrics_port: int | None = None  # serve /metrics on this loopback port (0: a free one)
    checkpoint_dir: Path | None = None  # checkpoints every 5 s there (the dashboard shows them)
    on_metrics: Callable[[int], None] | None = None  # told the bound port once serving


def _produce(stream: SyntheticStream, bootstrap: str, topic: str, rate: float) -> int:
    """Send the stream (malformed messages spread through it); returns messages sent."""
    producer = ClickProducer({"bootstrap.servers": bootstrap}, topic)
    producer.connect()  # the first events are not held while the client starts
    spots = set(np.linspace(0, len(stream.users) - 1, len(MALFORMED)).astype(int).tolist())
    bad = iter(MALFORMED)
    sent = 0
    for start, stop in paced(len(stream.users), rate):
        for n in range(start, stop):
            user = f"u{stream.users[n]}"
            event = ClickEvent(user, f"i{stream.items[n]}", float(stream.ts[n]))
            producer.send(user.encode(), encode_event(event))
            sent += 1
            if n in spots:
                producer.send(b"bad", next(bad))
                sent += 1
        producer.poll()
    producer.flush()
    return sent


def _taste_match(stream: SyntheticStream, lists: dict[int, list[str]]) -> tuple[float, float]:
    """Share of listed items in the user's two favourite genres, and that share for random lists."""
    hits = total = 0
    base = []
    genre_share = np.bincount(stream.item_genre, minlength=stream.user_taste.shape[1])
    genre_share = genre_share / genre_share.sum()
    for user, items in lists.items():
        favourite = stream.favourite_genres(user)
        genres = [int(stream.item_genre[int(i[1:])]) for i in items]
        hits += sum(g in favourite for g in genres)
        total += len(genres)
        base.append(sum(genre_share[g] for g in favourite))
    return (hits / total if total else 0.0), float(np.mean(base)) if base else 0.0


def demo_tag() -> str:
    """`<unix seconds>-<6 random hex>`: readable by time, and distinct for two demos in a second."""
    return f"{int(time.time())}-{secrets.token_hex(3)}"


def _names(*, own_kafka: bool, own_redis: bool) -> PrivateNames:
    """The defaults on servers of the demo's own; on given ones, topics and keys of its own.

    On a given Redis the lists go under a private prefix, the cold-start list beside them.
    """
    names = PrivateNames.fresh("recstream-demo", demo_tag())
    if own_kafka:
        names = replace(names, topic="clicks", dlq_topic="clicks.dlq")
    if own_redis:
        names = replace(names, prefix="rec:", cold_start_key="recstream:cold_start")
    return names


def _serve_metrics(
    options: DemoOptions, worker: Worker, metrics: WorkerMetrics
) -> HealthServer | None:
    """/metrics on loopback when asked (the dashboard tool scrapes it)."""
    if options.metrics_port is None:
        return None
    health = HealthServer(options.metrics_port, metrics, host="127.0.0.1")
    metrics.watch_device(worker.learner.device)
    health.start(worker.live, worker.ready)
    if options.on_metrics is not None:
        options.on_metrics(health.port)
    return health


def run_demo(options: DemoOptions) -> dict[str, Any]:
    """Start servers (unless given), stream clicks through a worker, read lists back."""
    kafka_server: EmbeddedKafka | None = None
    redis_server: EmbeddedRedis | None = None
    health: HealthServer | None = None
    try:
        if options.kafka is None:
            kafka_server = start_kafka()
        if options.redis is None:
            redis_server = start_redis()
        bootstrap = options.kafka or (kafka_server.bootstrap if kafka_server else "")
        redis_url = options.redis or (redis_server.url if redis_server else "")
        names = _names(own_kafka=kafka_server is not None, own_redis=redis_server is not None)
        settings = private_settings(
            bootstrap,
            redis_url,
            names,
            kafka_topic_partitions=4,
            redis_ttl_s=3600,
            top_k=10,
            checkpoint_dir=options.checkpoint_dir,
            checkpoint_interval_s=5.0,
        )
        topic = names.topic
        stream = generate(options.events, users=options.users, items=options.items)
        metrics = WorkerMetrics()
        worker = build_worker(settings, metrics)
        health = _serve_metrics(options, worker, metrics)
        loop = start_on_thread(worker)
        started = time.perf_counter()
        sent = _produce(stream, bootstrap, topic, options.rate)
        deadline = time.monotonic() + options.timeout_s
        while worker.totals.messages < sent and time.monotonic() < deadline and loop.is_alive():
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        worker.request_stop()
        loop.join(60)
        progress = group_progress(
            settings.kafka.client_config(), settings.kafka.group, settings.kafka.topic
        )
        sink = open_sink(settings.redis)
        published_users = sorted(set(stream.users.tolist()))
        lists: dict[int, list[str]] = {}
        for user in published_users:
            value = sink.get(f"u{user}")
            if value is not None:
                lists[user] = [str(i) for i in value["items"]]  # type: ignore[attr-defined]
        samples = {}
        for user in published_users[: options.sample_users]:
            value = sink.get(f"u{user}") or {}
            samples[f"u{user}"] = {
                "items": value.get("items", []),
                "favourite_genres": sorted(stream.favourite_genres(user)),
                "item_genres": [
                    int(stream.item_genre[int(i[1:])])
                    for i in value.get("items", [])  # type: ignore[attr-defined]
                ],
            }
        sink.close()
        match, baseline = _taste_match(stream, lists)
        totals = worker.totals
        return {
            "events": totals.events,
            "events_generated": options.events,
            "malformed_sent": len(MALFORMED),
            "dlq": totals.dead_lettered,
            "users_published": len(lists),
            "users_clicked": len(published_users),
            "events_per_s": round(totals.events / elapsed, 1),
            "offered_rate": options.rate,
            "latency_ms_p50": round(totals.latency.quantile_ms(0.5), 2),
            "latency_ms_p99": round(totals.latency.quantile_ms(0.99), 2),
            "batches": totals.batches,
            # Summed against what was sent: Tansu's ListOffsets can under-report the end.
            "committed_to_end": sum(c for c, _ in progress.values()) == sent,
            "taste_match": round(match, 3),
            "taste_match_random": round(baseline, 3),
            "device": str(worker.learner.device),
            "search_backend": backend_for(worker.learner.device),
            "elapsed_s": round(elapsed, 2),
            "samples": samples,
        }
    finally:
        _stop(health, redis_server, kafka_server)


def _stop(*servers: HealthServer | EmbeddedRedis | EmbeddedKafka | None) -> None:
    """Close what was started, in the order given."""
    for server in servers:
        if isinstance(server, HealthServer):
            server.close()
        elif server is not None:
            server.stop()


def format_report(report: dict[str, Any]) -> str:
    """The human report."""
    offsets = "to the end of every partition" if report["committed_to_end"] else "NOT to the end"
    lines = [
        "recstream demo",
        f"  events processed   {report['events']:,} of {report['events_generated']:,} generated",
        f"  dead-lettered      {report['dlq']} of {report['malformed_sent']} malformed sent",
        f"  users published    {report['users_published']:,} of {report['users_clicked']:,}",
        (
            f"  throughput         {report['events_per_s']:,.0f} events/s"
            f" (offered {report['offered_rate']:,.0f}/s; 0 = flat out)"
        ),
        (
            f"  click->Redis       p50 {report['latency_ms_p50']:.1f} ms,"
            f" p99 {report['latency_ms_p99']:.1f} ms"
        ),
        f"  offsets committed  {offsets}",
        (
            f"  list quality       {report['taste_match']:.0%} of listed items in the user's"
            f" two favourite genres (random lists: {report['taste_match_random']:.0%})"
        ),
        f"  device             {report['device']} (search: {report['search_backend']})",
        "  sample lists (item ids, then their genres; * = a favourite genre):",
    ]
    for user, sample in report["samples"].items():
        favourite = set(sample["favourite_genres"])
        genres = " ".join(f"{g}{'*' if g in favourite else ''}" for g in sample["item_genres"])
        lines.append(f"    {user}: {' '.join(sample['items'])}")
        lines.append(f"    {' ' * len(user)}  genres {genres}")
    return "\n".join(lines)
