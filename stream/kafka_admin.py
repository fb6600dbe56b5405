"""Cluster set-up at start: wait for a broker to answer, create the topics that are missing.

An admin client of its own per call: these run once, before the source exists.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Mapping
from typing import Any, cast

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream.errors import FatalError
from stream.kafka_config import KafkaConfig
from stream.kafka_errors import raise_for


def _admin(config: KafkaConfig) -> AdminClient:
    try:
        return AdminClient(cast("dict[str, Any]", dict(config)))
    except KafkaException as exc:
        raise FatalError(f"kafka client config rejected: {exc}") from exc


_BROKER_ASK_S = 1.0  # each metadata request's wait; between them the client's logs are served


def wait_for_broker(config: KafkaConfig, timeout_s: float) -> set[str]:
    """The cluster's topic names, once a broker answers; `FatalError` if none does in time.

    Asked again every second rather than once for the whole wait, so that the
    admin client's poll serves librdkafka's log lines as they come (to the
    config's `logger`, when it has one) instead of after the wait.
    """
    admin = _admin(config)
    deadline = time.monotonic() + timeout_s
    while True:
        asked = time.monotonic()
        try:
            meta = admin.list_topics(timeout=max(0.05, min(_BROKER_ASK_S, deadline - asked)))
        except KafkaException as exc:
            admin.poll(0)
            if time.monotonic() >= deadline:
                error: KafkaError = exc.args[0]
                raise FatalError(
                    f"no broker answered within {timeout_s:g} s ({error.str()})"
                ) from exc
            # refused at once (nothing listening): wait out the rest of this second
            time.sleep(max(0.0, min(asked + _BROKER_ASK_S, deadline) - time.monotonic()))
            continue
        admin.poll(0)
        return {name for name, topic in meta.topics.items() if topic.error is None}


def ensure_topics(
    config: KafkaConfig,
    partitions: Mapping[str, int],
    timeout_s: float = 30,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create missing topics (with `configs[name]` topic settings); an existing one is left."""
    admin = _admin(config)  # held until the futures resolve: its handle serves them
    extra = configs or {}
    futures = admin.create_topics(
        [
            NewTopic(
                name, num_partitions=n, replication_factor=-1, config=dict(extra.get(name, {}))
            )
            for name, n in partitions.items()
        ],
        request_timeout=timeout_s,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError as exc:
            raise FatalError(
                f"kafka create topic {name}: no answer within {timeout_s:g} s"
            ) from exc
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise_for(error, f"create topic {name}")


__all__ = ["ensure_topics", "wait_for_broker"]
