"""Settings with a private topic, group and keys, and a worker started on a thread.

Tests, the demo, the benchmarks and the eval share one broker and one Redis with
whatever else runs there; each run names its own topics, group and keys so it
never reads or overwrites another's.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from worker.config.settings import Settings, with_values
from worker.loop.batch_loop import Worker


@dataclass(frozen=True)
class PrivateNames:
    """One run's input topic, DLQ topic, consumer group, key prefix and cold-start key.

    The cold-start key lies outside the prefix (the settings insist): no user id can name it.
    """

    topic: str
    dlq_topic: str
    group: str
    prefix: str
    cold_start_key: str

    @classmethod
    def fresh(cls, label: str, tag: str | None = None) -> PrivateNames:
        """Names `{label}-{tag}...`; a random tag unless one is given."""
        name = f"{label}-{tag or uuid.uuid4().hex[:10]}"
        return cls(name, f"{name}.dlq", name, f"{name}:", f"{name}.cold_start")


def private_settings(
    bootstrap: str,
    redis_url: str,
    names: PrivateNames,
    base: Settings | None = None,
    /,
    **values: object,
) -> Settings:
    """`base` (default: the environment's) on this broker and Redis under `names`.

    No metrics port, and a short session timeout so a closed run's group settles
    quickly; `values` set further variables by their lower-case names (`with_values`),
    the wired ones too (`redis_url=...` points the run at another Redis).
    """
    wired: dict[str, object] = {
        "kafka_bootstrap": bootstrap,
        "kafka_topic": names.topic,
        "kafka_dlq_topic": names.dlq_topic,
        "kafka_group": names.group,
        "kafka_session_timeout_ms": 6_000,
        "redis_url": redis_url,
        "redis_prefix": names.prefix,
        "redis_cold_start_key": names.cold_start_key,
        "metrics_port": 0,
    }
    return with_values(base if base is not None else Settings(), **{**wired, **values})


def start_on_thread(worker: Worker, join_timeout_s: float = 60.0) -> threading.Thread:
    """Run `worker` on a daemon thread; return once it holds partitions.

    Also returns when the thread died or `join_timeout_s` passed: callers then
    measure clicks, not the consumer group's join.
    """
    loop = threading.Thread(target=worker.run, kwargs={"handle_signals": False}, daemon=True)
    loop.start()
    deadline = time.monotonic() + join_timeout_s
    while not worker.source.assigned and time.monotonic() < deadline and loop.is_alive():
        time.sleep(0.05)
    return loop
