"""Real servers for integration tests: one Tansu broker and one Valkey per session.

Each test gets its own topics, consumer group and key prefix, so tests share
the servers without seeing each other's data.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from worker.config.settings import Settings
from worker.testing.embedded import (
    EmbeddedKafka,
    EmbeddedRedis,
    free_port,
    start_kafka,
    start_redis,
)
from worker.testing.private import PrivateNames, private_settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration carries the `integration` marker."""
    for item in items:
        item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_server() -> Iterator[EmbeddedKafka]:
    """A Tansu broker on a free loopback port."""
    server = start_kafka()
    yield server
    server.stop()


def _listening(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
        except OSError:
            time.sleep(0.05)
        else:
            return True
    return False


@pytest.fixture
def s3_endpoint(tmp_path: Path) -> Iterator[str]:
    """A local S3-compatible server (moto_server) on a free loopback port, with bucket `tansu`."""
    port = free_port()
    moto = Path(sys.executable).parent / "moto_server"
    with (tmp_path / "moto.log").open("wb") as log:
        process = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
        )
    try:
        assert _listening(port, 30), (tmp_path / "moto.log").read_text()
        endpoint = f"http://127.0.0.1:{port}"
        # Create the bucket (a plain http:// URL that this fixture built).
        request = urllib.request.Request(f"{endpoint}/tansu", method="PUT")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert response.status == 200
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class S3Kafka:
    """A Tansu broker whose topics and offsets live in S3: it can stop and start on one port."""

    endpoint: str
    port: int = field(default_factory=free_port)
    server: EmbeddedKafka | None = None

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers string (the same across restarts)."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the broker on this port and bucket."""
        assert self.server is None, "already running"
        env = {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
        self.server = start_kafka(self.port, storage_engine="s3://tansu/", env=env)

    def stop(self) -> None:
        """Stop the broker (SIGTERM); what it stored stays in the bucket."""
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture
def s3_kafka(s3_endpoint: str) -> Iterator[S3Kafka]:
    """A started Tansu broker on the `s3://tansu/` engine, against the local S3 server."""
    broker = S3Kafka(s3_endpoint)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """A Valkey server on a free loopback port."""
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture
def names() -> PrivateNames:
    """Fresh topic, DLQ topic, group, key prefix and cold-start key for this test."""
    return PrivateNames.fresh("test")


@pytest.fixture
def make_settings(
    kafka_server: EmbeddedKafka, redis_server: EmbeddedRedis, names: PrivateNames
) -> object:
    """Factory for worker settings pointed at the test servers and this test's names.

    Overrides are variables by their lower-case names: `make_settings(batch_size=128)`.
    """

    def build(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "kafka_topic_partitions": 3,
            "redis_ttl_s": 600,
            "top_k": 10,
            "dim": 16,
            "batch_size": 512,
            "batch_ms": 20,
            "device": "cpu",
        }
        return private_settings(
            kafka_server.bootstrap, redis_server.url, names, **{**values, **overrides}
        )

    return build


@pytest.fixture
def worker_env(
    kafka_server: EmbeddedKafka, redis_server: EmbeddedRedis, names: PrivateNames
) -> object:
    """Factory for a `recstream run` subprocess environment: the test servers and names.

    The environment's own RECSTREAM_* variables are dropped so nothing leaks in.
    """

    def build(**overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECSTREAM_")}
        env.update(
            RECSTREAM_KAFKA_BOOTSTRAP=kafka_server.bootstrap,
            RECSTREAM_KAFKA_TOPIC=names.topic,
            RECSTREAM_KAFKA_DLQ_TOPIC=names.dlq_topic,
            RECSTREAM_KAFKA_GROUP=names.group,
            RECSTREAM_KAFKA_SESSION_TIMEOUT_MS="6000",
            RECSTREAM_KAFKA_TOPIC_PARTITIONS="3",
            RECSTREAM_REDIS_URL=redis_server.url,
            RECSTREAM_REDIS_PREFIX=names.prefix,
            RECSTREAM_REDIS_COLD_START_KEY=names.cold_start_key,
            RECSTREAM_TOP_K="10",
            RECSTREAM_DIM="16",
            RECSTREAM_DEVICE="cpu",
            RECSTREAM_METRICS_PORT="0",
            RECSTREAM_LOG_FORMAT="json",
        )
        env.update(overrides)
        return env

    return build


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A plain client on the test Valkey."""
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    yield client
    client.close()


class Sent:
    """What a test produced: per-partition end offsets from the broker's delivery reports."""

    def __init__(self) -> None:
        """Start empty."""
        self.ends: dict[int, int] = {}
        self.count = 0

    def delivered(self, err: object, msg: object) -> None:
        """Delivery callback: track the highest offset per partition."""
        assert err is None, f"produce failed: {err}"
        partition, offset = msg.partition(), msg.offset()  # type: ignore[attr-defined]
        self.ends[partition] = max(self.ends.get(partition, 0), offset + 1)
        self.count += 1


@pytest.fixture
def produce(kafka_server: EmbeddedKafka) -> object:
    """`produce(topic, [(key, value), ...]) -> Sent`, flushed and delivery-checked.

    `partition` sends every message to that partition rather than by key; `config`
    adds producer settings (e.g. a larger `message.max.bytes`).
    """
    from confluent_kafka import Producer

    def send(
        topic: str,
        messages: list[tuple[bytes | None, bytes]],
        *,
        partition: int | None = None,
        config: dict[str, object] | None = None,
    ) -> Sent:
        sent = Sent()
        producer = Producer(
            {"bootstrap.servers": kafka_server.bootstrap, "linger.ms": 5, **(config or {})}
        )
        where = {} if partition is None else {"partition": partition}
        for key, value in messages:
            producer.produce(topic, value=value, key=key, on_delivery=sent.delivered, **where)
            producer.poll(0)
        assert producer.flush(30) == 0
        assert sent.count == len(messages)
        return sent

    return send


@pytest.fixture
def read_topic(kafka_server: EmbeddedKafka) -> object:
    """`read_topic(topic, expected, timeout_s) -> [Message]`: a whole topic, from the start."""
    import time

    from confluent_kafka import Consumer

    def read(topic: str, expected: int, timeout_s: float = 30.0) -> list[object]:
        consumer = Consumer(
            {
                "bootstrap.servers": kafka_server.bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                "fetch.wait.max.ms": 10,
            }
        )
        consumer.subscribe([topic])
        out: list[object] = []
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                out += [m for m in consumer.consume(500, 0.5) if m.error() is None]
                if len(out) >= expected:
                    # one more short poll: anything beyond `expected` is a failure to see
                    out += [m for m in consumer.consume(500, 1.0) if m.error() is None]
                    break
        finally:
            consumer.close()
        return out

    return read


@pytest.fixture
def group_stable(kafka_server: EmbeddedKafka) -> object:
    """`group_stable(group, timeout_s) -> bool`: wait until the broker reports the group Stable.

    A test that stands for a kill with `Worker.close()` sends a LeaveGroup, which a
    killed process never does. Sent while Tansu 0.6 still holds the member's
    JoinGroup (it answers a join about 3 s later), it wedges the group: the
    generation completes with the departed member as its leader, and every later
    member is handed that generation and waits for an assignment that never comes
    (docs/reliability.md). So a worker closed right after it was built is closed
    once its join went through: the group is Stable again.
    """
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": kafka_server.bootstrap})

    def stable(group: str) -> bool:
        described = admin.describe_consumer_groups([group], request_timeout=5)[group]
        return described.result(timeout=10).state == ConsumerGroupState.STABLE

    def wait(group: str, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if stable(group):
                return True
            time.sleep(0.1)
        return stable(group)

    return wait


@pytest.fixture
def committed(kafka_server: EmbeddedKafka) -> object:
    """`committed(group, topic) -> {partition: offset}` as the broker stores it."""
    from stream.committed import group_progress

    def read(group: str, topic: str) -> dict[int, int]:
        progress = group_progress({"bootstrap.servers": kafka_server.bootstrap}, group, topic)
        return {p: c for p, (c, _) in progress.items()}

    return read
