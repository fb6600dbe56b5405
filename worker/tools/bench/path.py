"""The whole path through the real broker and Redis, with the naive worker and the rooflines."""

from __future__ import annotations

import threading
import time
import uuid

import msgpack
import numpy as np

from stream.batch import decode_messages
from stream.click_producer import ClickProducer
from stream.events import decode_event
from stream.kafka import KafkaSource
from stream.kafka_admin import ensure_topics
from worker.app import build_worker
from worker.config.settings import Settings, with_values
from worker.loop.batch_loop import Worker
from worker.observability.stats import LatencyReservoir
from worker.testing.private import PrivateNames, private_settings
from worker.tools.bench.floor import pass_through_at_load
from worker.tools.bench.load import offer
from worker.tools.bench.stages import Row
from worker.tools.replay import Interactions, send_interactions

_LIMIT_S = 600
_JOIN_S = 60  # the consumer group's join, at most, before the load is offered
_FLAT_OUT_EVENTS = 100_000  # offered at once: the saturation run on the uniform-user load
_CONSUMER: dict[str, str | int] = {
    "session.timeout.ms": 6000,
    "fetch.wait.max.ms": 10,
    "auto.offset.reset": "earliest",
}


def _settings(bootstrap: str, redis_url: str, device: str, tag: str) -> Settings:
    return private_settings(
        bootstrap,
        redis_url,
        PrivateNames.fresh("bench", tag),
        kafka_topic_partitions=4,
        redis_ttl_s=600,
        device=device,
        top_k=50,
    )


def prefill(bootstrap: str, data: Interactions, partitions: int = 4) -> str:
    """A fresh topic holding every interaction, flushed; returns its name."""
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    ensure_topics({"bootstrap.servers": bootstrap}, {topic: partitions})
    send_interactions(ClickProducer({"bootstrap.servers": bootstrap}, topic), data)
    return topic


def _drain_rate(poll: object, total: int, timeout_s: float = 300) -> float:
    """Events/s from the first message to the last, so group join time stays out."""
    first = None
    seen = 0
    deadline = time.monotonic() + timeout_s
    while seen < total and time.monotonic() < deadline:
        got = poll()  # type: ignore[operator]
        if got and first is None:
            first = time.perf_counter()
        seen += got
    if first is None or seen < total:
        raise RuntimeError(f"drained {seen} of {total}")
    return total / (time.perf_counter() - first)


def ingest(bootstrap: str, topic: str, total: int) -> list[Row]:
    """KafkaSource + batch decode vs bare confluent-kafka consume + msgpack.unpackb (roofline)."""
    from confluent_kafka import Consumer  # noqa: TID251  (the roofline is the raw client)

    raw = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, **_CONSUMER})
    raw.subscribe([topic])

    def bare() -> int:
        messages = raw.consume(4096, 0.05)
        for m in messages:
            msgpack.unpackb(m.value())
        return len(messages)

    roof = _drain_rate(bare, total)
    raw.close()
    config = {"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, **_CONSUMER}
    source = KafkaSource(config, topic)

    def ours() -> int:
        return decode_messages(source.poll(4096, 0.05).messages).messages

    rate = _drain_rate(ours, total)
    source.close()
    return [
        Row(
            "ingest",
            "consume + decode",
            rate,
            "events/s",
            "bare consume + msgpack.unpackb (roofline)",
            roof,
        )
    ]


def whole_path(bootstrap: str, redis_url: str, device: str, topic: str, total: int) -> float:
    """Events/s a worker drains from a pre-filled topic: consume to commit, Redis included."""
    settings = _settings(bootstrap, redis_url, device, uuid.uuid4().hex[:8])
    settings = with_values(settings, kafka_topic=topic)
    worker = build_worker(settings)
    try:
        return _drain_rate(lambda: r.messages if (r := worker.step()) else 0, total)
    finally:
        worker.close()


def naive(bootstrap: str, redis_url: str, topic: str, events: int) -> float:
    """One event at a time: decode, Python-loop SGD, numpy brute-force top-K, one SET, commit."""
    import redis  # noqa: TID251  (a baseline written the obvious way)
    from confluent_kafka import Consumer  # noqa: TID251

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "enable.auto.commit": False,
            **_CONSUMER,
        }
    )
    consumer.subscribe([topic])
    client = redis.Redis.from_url(redis_url)
    rng = np.random.default_rng(0)
    users: dict[str, np.ndarray] = {}
    item_row: dict[str, int] = {}
    item_ids: list[str] = []
    vectors = rng.normal(0, 0.1, (1024, 64)).astype(np.float32)
    seen: dict[str, set[int]] = {}
    done = 0
    first = None
    while done < events:
        message = consumer.poll(1.0)
        if message is None or message.error():
            continue
        first = first or time.perf_counter()
        event = decode_event(message.value(), 0.0)
        if event.item not in item_row:
            item_row[event.item] = len(item_ids)
            item_ids.append(event.item)
            if len(item_ids) > vectors.shape[0]:
                grown = rng.normal(0, 0.1, (vectors.shape[0], 64)).astype(np.float32)
                vectors = np.vstack([vectors, grown])
        user = users.setdefault(event.user, rng.normal(0, 0.1, 64).astype(np.float32))
        i = item_row[event.item]
        j = int(rng.integers(0, len(item_ids)))
        vi, vj = vectors[i], vectors[j]
        g = 0.05 / (1.0 + float(np.exp(user @ (vi - vj))))  # BPR step size for this event
        for d in range(64):  # the per-event, per-dimension Python loop
            u_d = user[d]
            user[d] += g * (vi[d] - vj[d])
            vi[d] += g * u_d
            vj[d] -= g * u_d
        seen.setdefault(event.user, set()).add(i)
        scores = vectors[: len(item_ids)] @ user
        order = np.argsort(-scores)
        top = [item_ids[r] for r in order if r not in seen[event.user]][:50]
        client.set(f"naive:{event.user}", msgpack.packb({"items": top}), ex=600)
        consumer.commit(message=message, asynchronous=False)
        done += 1
    consumer.close()
    client.close()
    return events / (time.perf_counter() - (first or time.perf_counter()))


def river_learn_only(data: Interactions, limit: int) -> float:
    """River's FunkMF.learn_one over the same replay: events/s, learning only."""
    from river import optim, reco

    model = reco.FunkMF(n_factors=10, optimizer=optim.SGD(0.05), seed=0)
    users, items = data.users[:limit], data.items[:limit]
    start = time.perf_counter()
    for user, item in zip(users, items, strict=True):
        model.learn_one(user, item, 1.0)  # type: ignore[no-untyped-call,unused-ignore]
    return len(users) / (time.perf_counter() - start)


def latency_at_load(
    bootstrap: str, redis_url: str, device: str, rate: float, seconds: float
) -> dict[str, float]:
    """Offer `rate` events/s of the outside load (`load.offer`); click→Redis p50/p99, events/s.

    The worker runs on this thread, as `recstream run` runs it on the main one (glibc
    gives the main thread's heap back to the kernel by other rules than a thread's:
    `worker/heap.py`); a watcher thread resets the figures after warm-up and stops it.
    """
    tag = uuid.uuid4().hex[:8]
    settings = _settings(bootstrap, redis_url, device, tag)
    worker = build_worker(settings)
    events = int(rate * seconds) if rate else _FLAT_OUT_EVENTS
    run = _Run(worker, bootstrap, settings.kafka.topic, rate, events)
    watcher = threading.Thread(target=run.watch, daemon=True)
    watcher.start()
    worker.run(handle_signals=False)
    watcher.join(60)
    return {
        "offered": rate,
        "events_per_s": worker.totals.events / max(run.elapsed, 1e-9),
        "p50_ms": worker.totals.latency.quantile_ms(0.5),
        "p99_ms": worker.totals.latency.quantile_ms(0.99),
        **{f"stage_{name}_s": seconds for name, seconds in worker.totals.stage_s.items()},
    }


class _Run:
    """The watcher of one latency run, on a thread beside the worker's loop."""

    def __init__(
        self, worker: Worker, bootstrap: str, topic: str, rate: float, events: int
    ) -> None:
        """A run offering `events` clicks at `rate` (0: flat out) to `topic`."""
        self.worker, self.bootstrap, self.topic = worker, bootstrap, topic
        self.rate, self.events = rate, events
        self.elapsed = 0.0

    def watch(self) -> None:
        """Offer the load once the worker holds partitions; reset after warm-up; stop it.

        The first fifth warms caches, tables and kernels; latency counts the rest. The
        rate counts from the first processed event, so start-up stays out.
        """
        worker, events = self.worker, self.events
        deadline = time.monotonic() + _JOIN_S
        while not worker.source.assigned and time.monotonic() < deadline:
            time.sleep(0.05)
        producer, path = offer(self.bootstrap, self.topic, self.rate, events)
        deadline = time.monotonic() + _LIMIT_S
        first = None
        warm = False
        try:
            while worker.totals.messages < events and time.monotonic() < deadline:
                if first is None and worker.totals.messages:
                    first = time.perf_counter()
                if not warm and worker.totals.messages >= events // 5:
                    worker.totals.latency = LatencyReservoir()
                    worker.totals.stage_s.clear()
                    warm = True
                time.sleep(0.005)
            self.elapsed = time.perf_counter() - (first or time.perf_counter())
        finally:
            worker.request_stop()
            producer.wait(60)
            path.unlink()


__all__ = [
    "ingest",
    "latency_at_load",
    "naive",
    "pass_through_at_load",
    "prefill",
    "river_learn_only",
    "whole_path",
]
