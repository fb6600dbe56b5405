"""Checks at start: local settings first, then the broker, the topics and Redis, or exit 2.

Each failure is a `StartupError` that names the variable to fix and where the worker
looked; nothing here waits longer than `RECSTREAM_STARTUP_TIMEOUT_S`.
"""

from __future__ import annotations

import time
from pathlib import Path

import structlog
import torch

from models.device import resolve_device
from models.errors import CheckpointError, ModelError
from stream.errors import FatalError, TransientError
from stream.kafka_admin import ensure_topics, wait_for_broker
from stream.redis_sink import RedisSink
from worker.config.edges import KafkaSettings
from worker.config.settings import Settings
from worker.errors import StartupError
from worker.storage.checkpoint_dir import check_writable

log = structlog.get_logger("recstream.worker")

_REDIS_RETRY_S = 0.5


def check_local(settings: Settings) -> torch.device:
    """What needs no server, checked before waiting for any: the device, the disk, the CA file.

    Returns the device. A bad one is a `StartupError` naming its variable, so a
    typo is reported at once rather than after the broker wait, and as itself.
    """
    try:
        device = resolve_device(settings.device)
    except ModelError as exc:
        raise StartupError(str(exc), variable="RECSTREAM_DEVICE", device=settings.device) from exc
    directory = settings.checkpoint.dir
    if directory is not None:
        try:
            check_writable(directory)
        except CheckpointError as exc:
            raise StartupError(
                str(exc), variable="RECSTREAM_CHECKPOINT_DIR", directory=str(directory)
            ) from exc
    ca = settings.kafka.ssl_ca_location
    if ca and ca != "probe" and not Path(ca).is_file():  # "probe": librdkafka finds the system's
        raise StartupError(
            f"the CA bundle {ca} is not a readable file",
            variable="RECSTREAM_KAFKA_SSL_CA_LOCATION",
            path=ca,
        )
    return device


def check_kafka(kafka: KafkaSettings, timeout_s: float) -> None:
    """Wait for a broker, then create the missing topics (when allowed) or warn of them."""
    try:
        topics = wait_for_broker(kafka.client_config(), timeout_s)
    except FatalError as exc:
        raise StartupError(
            f"kafka at {kafka.bootstrap}: {exc}",
            bootstrap_servers=kafka.bootstrap,
            variable="RECSTREAM_KAFKA_BOOTSTRAP",
            waited_s=timeout_s,
        ) from exc
    wanted = [kafka.topic, kafka.dlq_topic] + ([kafka.control_topic] if kafka.control_topic else [])
    missing = [name for name in wanted if name not in topics]
    if missing and kafka.create_topics:
        # A control topic of one partition keeps every operator's messages in one order.
        counts = {n: 1 if n == kafka.control_topic else kafka.topic_partitions for n in missing}
        try:
            ensure_topics(kafka.client_config(), counts, timeout_s)
        except (FatalError, TransientError) as exc:
            raise StartupError(
                f"kafka at {kafka.bootstrap}: {exc}",
                bootstrap_servers=kafka.bootstrap,
                variable="RECSTREAM_KAFKA_CREATE_TOPICS",
                topics=missing,
            ) from exc
        log.info("topics_created", topics=missing, partitions=kafka.topic_partitions)
        return
    if kafka.dlq_topic in missing:
        # Fatal, unlike the input: the worker could consume, but the first bad event's
        # dead letter would fail and block every commit behind it.
        raise StartupError(
            f"kafka at {kafka.bootstrap}: the dead-letter topic {kafka.dlq_topic!r} does not "
            "exist and RECSTREAM_KAFKA_CREATE_TOPICS is false: create it, or allow creation",
            variable="RECSTREAM_KAFKA_DLQ_TOPIC",
            topic=kafka.dlq_topic,
            bootstrap_servers=kafka.bootstrap,
            create_topics=False,
        )
    for name in missing:
        # Not fatal: the worker subscribes anyway, warns while it waits, and consumes the
        # topic within seconds of its creation.
        log.warning(
            "topic_missing",
            topic=name,
            role="input" if name == kafka.topic else "control",
            bootstrap_servers=kafka.bootstrap,
            create_topics=False,
        )


def check_redis(sink: RedisSink, timeout_s: float) -> None:
    """Wait for Redis to answer a ping on the configured database; refusals fail at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            sink.check()
        except TransientError as exc:
            if time.monotonic() >= deadline:
                raise StartupError(
                    f"redis at {sink.address}: no answer within {timeout_s:g} s ({exc})",
                    redis=sink.address,
                    variable="RECSTREAM_REDIS_URL",
                    waited_s=timeout_s,
                ) from exc
            time.sleep(min(_REDIS_RETRY_S, max(0.0, deadline - time.monotonic())))
        except FatalError as exc:
            raise StartupError(
                f"redis at {sink.address}: {exc}",
                redis=sink.address,
                variable="RECSTREAM_REDIS_URL",
            ) from exc
        else:
            return
