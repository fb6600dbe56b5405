"""Build the scale-out side of a worker: its topics checked or created, its Kafka clients.

The state topic must have exactly as many partitions as the input topic (user
state is cut by input partition); a mismatch is a configuration error.
It is created with `cleanup.policy=compact` (only the latest record per user
matters); a broker that refuses the setting gets a plain topic, which works
the same, only restores read more.
"""

from __future__ import annotations

import structlog

from stream.errors import FatalError, TransientError
from stream.kafka_admin import ensure_topics
from stream.sync_topics import FeedReader, PartitionReader, SyncProducer, partition_count
from worker.config.settings import Settings
from worker.engine.engine import Engine
from worker.errors import StartupError
from worker.observability.metrics import WorkerMetrics
from worker.scaleout.service import ScaleConfig, ScaleOut

log = structlog.get_logger("recstream.worker")

COMPACT = {"cleanup.policy": "compact"}


def _create(kafka_config: dict[str, object], name: str, partitions: int, timeout_s: float) -> None:
    try:
        ensure_topics(kafka_config, {name: partitions}, timeout_s, {name: COMPACT})
    except FatalError as exc:  # a broker without compaction: the same topic, uncompacted
        log.warning("topic_not_compacted", topic=name, error=str(exc))
        ensure_topics(kafka_config, {name: partitions}, timeout_s)
    log.info("topics_created", topics=[name], partitions=partitions, compacted="tried")


def check_sync_topics(settings: Settings) -> int:
    """Create the state topic and item feed if missing; returns the input's partition count."""
    kafka = settings.kafka
    config = kafka.client_config()
    timeout_s = settings.startup_timeout_s
    try:
        partitions = partition_count(config, kafka.topic) or kafka.topic_partitions
        state = partition_count(config, kafka.state_topic_name)
        if state is None:
            _create(config, kafka.state_topic_name, partitions, timeout_s)
        elif state != partitions:
            raise StartupError(
                f"{kafka.state_topic_name} has {state} partitions, {kafka.topic} {partitions}: "
                "user state is cut by input partition, so they must match",
                variable="RECSTREAM_KAFKA_STATE_TOPIC",
            )
        if partition_count(config, kafka.items_topic_name) is None:
            ensure_topics(config, {kafka.items_topic_name: 1}, timeout_s)
        snapshot = partition_count(config, kafka.items_snapshot_topic_name)
        if snapshot is None:  # records on 0 (keyed by item id: compacted), markers on 1
            _create(config, kafka.items_snapshot_topic_name, 2, timeout_s)
        elif snapshot < 2:  # noqa: PLR2004
            raise StartupError(
                f"{kafka.items_snapshot_topic_name} has {snapshot} partition; the item snapshot"
                " needs 2 (records, markers)",
                variable="RECSTREAM_KAFKA_ITEMS_TOPIC",
            )
    except (FatalError, TransientError) as exc:
        raise StartupError(
            f"kafka at {kafka.bootstrap}: {exc}", variable="RECSTREAM_SCALE_OUT"
        ) from exc
    return partitions


def build_scale(
    settings: Settings, engine: Engine, metrics: WorkerMetrics | None = None
) -> ScaleOut:
    """The worker's scale-out part, its item table caught up with the feed."""
    check_sync_topics(settings)
    kafka = settings.kafka
    config = kafka.client_config()
    scale = ScaleOut(
        ScaleConfig(
            topic=kafka.topic,
            state_topic=kafka.state_topic_name,
            items_topic=kafka.items_topic_name,
            item_sync_s=settings.scale.item_sync_s,
            state_flush_s=settings.scale.state_flush_s,
            snapshot_topic=kafka.items_snapshot_topic_name,
            item_snapshot_s=settings.scale.item_snapshot_s,
        ),
        engine,
        producer=SyncProducer(config),
        reader=PartitionReader(config),
        feed=FeedReader(config, kafka.items_topic_name),
        metrics=metrics,
    )
    scale.catch_up()
    return scale
