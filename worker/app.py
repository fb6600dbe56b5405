"""Build a `Worker` from `Settings`: each component gets only its part."""

from __future__ import annotations

import structlog
import torch

from index.factory import make_index
from index.knn import backend_for
from models.catalogue import Catalogue
from models.checkpoint import Restored
from models.history import SeenHistory
from models.learner import LearnerConfig, OnlineLearner
from models.ranker import RankerConfig
from models.rows import RowLimits, RowPolicy
from stream.control import ControlSource
from stream.dead_letters import DeadLetterProducer
from stream.errors import FatalError
from stream.group import GroupView
from stream.kafka import KafkaSource
from stream.list_sweep import ListSweeper
from stream.redis_cluster_sink import RedisClusterSink
from stream.redis_sink import RedisSink
from worker.catalogue.control import CatalogueControl
from worker.catalogue.sweep import CatalogueSweep
from worker.config.edges import KafkaSettings, RedisSettings
from worker.config.parts import CandidateSettings, ModelSettings
from worker.config.settings import Settings, with_values
from worker.engine.engine import Engine
from worker.engine.stage_config import StageConfig
from worker.engine.threads import torch_threads
from worker.engine.warmup import warm_up
from worker.errors import StartupError
from worker.loop.batch_loop import Worker
from worker.loop.batching import default_batch_max
from worker.loop.config import LoopConfig
from worker.loop.hooks import LoopHook, Parts
from worker.observability.metrics import WorkerMetrics
from worker.scaleout.build import build_scale
from worker.scaleout.peers import PeerWatch
from worker.startup import check_kafka, check_local, check_redis
from worker.storage.checkpoints import Checkpointer, restore_at_start

log = structlog.get_logger("recstream.worker")


def learner_config(model: ModelSettings, device: torch.device) -> LearnerConfig:
    """The learner's config: `settings.model` whole, with the device's default negatives."""
    return LearnerConfig(**{**dict(model), "negatives": model.negatives_on(device.type)})


def open_sink(redis: RedisSettings) -> RedisSink:
    """The Redis sink (and reader) that `settings.redis` describes."""
    sink = RedisClusterSink if redis.cluster else RedisSink  # scale-out hook: Redis Cluster
    return sink(
        redis.url.get_secret_value(),
        prefix=redis.prefix,
        ttl_s=redis.ttl_s,
        password=redis.password.get_secret_value() if redis.password else None,
        timeout_s=redis.timeout_s,
        cold_start_key=redis.cold_start_key,
    )


def build_engine(
    settings: Settings, device: torch.device, restored: Restored | None = None
) -> Engine:
    """Learner, seen history and index from `settings` (or a checkpoint): worker and eval alike.

    The seen history is the learner's: one ring per user, as wide as lists exclude.
    """
    history = SeenHistory(settings.ranking.seen_history, device)
    learner = OnlineLearner(learner_config(settings.model, device), device, history)
    if restored is not None:
        learner = restored.learner
        log.info(
            "checkpoint_restored",
            path=str(restored.path),
            users=len(learner.users),
            items=len(learner.items),
            partitions=len(restored.offsets),
        )
    limits = settings.rows
    rows = RowPolicy.over(
        learner.users,
        learner.items,
        RowLimits(limits.max_users, limits.id_ttl_s, limits.min_occurrences),
        RowLimits(limits.max_items, limits.id_ttl_s, limits.min_occurrences),
        restored.rows if restored else None,
    )
    index = make_index(
        settings.index.kind,
        nlist=settings.index.nlist,
        nprobe=settings.index.nprobe,
        refresh_s=settings.index.refresh_s,
        refresh_updates=settings.index.refresh_updates,
        coded_from=settings.index.coded_from,
        device_type=device.type,
    )
    catalogue = Catalogue()
    if restored is not None and restored.catalogue:
        catalogue.load_state_dict(restored.catalogue)
    engine = Engine(
        learner,
        index,
        settings.ranking.top_k,
        rows,
        catalogue,
        stage_config(settings.candidates, settings.model.seed),
        learn_chunk=settings.loop.batch_size,
    )
    if restored is not None and restored.ranking:
        engine.stages.load_state_dict(restored.ranking)
    return engine


def stage_config(candidates: CandidateSettings, seed: int = 0) -> StageConfig:
    """The two stages' config from `settings.candidates`."""
    c = candidates
    return StageConfig(
        vector=c.vector,
        covisit=c.covisit,
        successors=c.successors,
        trending=c.trending,
        cold=c.cold,
        cold_max_clicks=c.cold_max_clicks,
        window=c.window,
        covisit_window=c.covisit_window,
        train_events=c.ranker_train_events,
        next_weight=c.next_weight,
        idle_after_s=c.idle_after_s,
        idle_popular_share=c.idle_popular_share,
        taste_share=c.taste_share,
        taste_learned=c.taste_learned,
        idle_learned=c.idle_learned,
        sources=c.sources,
        drop=c.ranker_drop,
        ranker=RankerConfig(
            hidden=c.ranker_hidden, learning_rate=c.ranker_learning_rate, seed=seed
        ),
    )


def open_control(kafka: KafkaSettings, offsets: dict[int, int]) -> ControlSource:
    """The control topic's reader, from `offsets` (the restored catalogue's); exit 2 if none."""
    try:
        return ControlSource(kafka.consumer_config(), kafka.control_topic, offsets)
    except FatalError as exc:
        raise StartupError(
            str(exc), variable="RECSTREAM_KAFKA_CONTROL_TOPIC", topic=kafka.control_topic
        ) from exc


def open_sweep(settings: Settings, metrics: WorkerMetrics) -> CatalogueSweep | None:
    """The sweep of stored lists after a removal, on its own connection; None when off.

    Off with RECSTREAM_CONTROL_SWEEP_S=0, and on a Redis Cluster, where one Lua call cannot
    read a SCAN page's keys across slots (README, "Taking an item off the shelf").
    """
    redis = settings.redis
    if not settings.control.sweep_s:
        return None
    if redis.cluster:
        log.warning("catalogue_sweep_off", reason="not supported on a Redis Cluster yet")
        return None
    sweeper = ListSweeper.connect(
        redis.url.get_secret_value(),
        redis.prefix,
        password=redis.password.get_secret_value() if redis.password else None,
        timeout_s=redis.timeout_s,
    )
    return CatalogueSweep(sweeper, settings.control.sweep_s, metrics)


def build_worker(settings: Settings, metrics: WorkerMetrics | None = None) -> Worker:
    """Create the learner, index and edges described by `settings`, and plug in the hooks.

    The hooks, in the order the loop calls them: the checkpointer (with a checkpoint
    directory), catalogue control (with a control topic), scale-out (when on). The
    broker and Redis must answer within `startup_timeout_s`, or `StartupError`.
    """
    device = check_local(settings)  # the device, the checkpoint directory, files: no waiting
    threads = torch_threads(settings.torch_threads)
    torch.set_num_threads(threads)
    log.info("torch_threads", threads=threads, setting=settings.torch_threads)
    metrics = metrics or WorkerMetrics()
    kafka = settings.kafka
    check_kafka(kafka, settings.startup_timeout_s)
    directory = settings.checkpoint.dir
    # scale-out: state comes from the state topic and the item feed, not a checkpoint
    scale_out = settings.scale.scale_out
    restored = restore_at_start(directory, device) if directory and not scale_out else None
    engine = build_engine(settings, device, restored)
    # Before the worker exists, so `/readyz` cannot answer 200 until the device paths ran.
    scratch = with_values(settings, min_occurrences=1, index_kind="exact")
    warm_s = warm_up(lambda: build_engine(scratch, device), settings.loop.batch_size)
    log.info("warmed_up", device=str(device), duration_ms=round(warm_s * 1000, 1))
    sink = open_sink(settings.redis)
    try:
        check_redis(sink, settings.startup_timeout_s)
    except BaseException:
        sink.close()
        engine.index.close()
        raise

    scale = build_scale(settings, engine, metrics) if scale_out else None
    # scale-out off: warn at each rebalance if other members share the group
    peers = (
        None
        if scale_out
        else PeerWatch(GroupView(kafka.client_config()), kafka.group, kafka.topic, metrics)
    )

    def assigned(parts: Parts) -> None:
        # cooperative: `parts` are those added; `held`, everything this worker has now
        held = sorted(p for _, p in source.assigned)
        log.info("partitions_assigned", partitions=[p for _, p in parts], held=held)
        if peers is not None:
            peers.check(len(source.assigned))

    # The loop finished any write in flight first (KafkaSource's before_revoke); the worker
    # exists by the time the consumer calls these (only its polls and close do).
    def revoked(parts: Parts) -> None:
        log.info("partitions_revoked", partitions=[p for _, p in parts])  # those leaving
        worker.partitions_revoked(parts)

    def lost(parts: Parts) -> None:
        log.info("partitions_revoked", partitions=[p for _, p in parts], lost=True)
        worker.partitions_lost(parts)

    source = KafkaSource(
        kafka.consumer_config(),
        kafka.topic,
        on_assign=assigned,
        on_revoke=revoked,
        start_offsets=restored.offsets if restored else None,
        start_at=scale.start_at if scale else None,  # users restored before consuming
        on_lost=lost,
    )
    log.info(
        "worker_configured",
        topic=kafka.topic,
        group=kafka.group,
        dlq_topic=kafka.dlq_topic,
        device=str(device),
        search_backend=backend_for(device),
        index=settings.index.kind,
        dim=settings.model.dim,
        top_k=settings.ranking.top_k,
        batch_size=settings.loop.batch_size,
        batch_max=settings.loop.batch_max or default_batch_max(device.type),
        batch_ms=settings.loop.batch_ms,
        max_users=settings.rows.max_users,
        max_items=settings.rows.max_items,
        id_ttl_s=settings.rows.id_ttl_s,
        min_occurrences=settings.rows.min_occurrences,
    )
    dead_letters = DeadLetterProducer(kafka.client_config(), kafka.dlq_topic)
    hooks: list[LoopHook] = []
    if directory is not None:
        hooks.append(Checkpointer(directory, settings.checkpoint.interval_s, metrics))
    if kafka.control_topic:
        control = open_control(kafka, engine.catalogue.control_offsets)
        sweep = open_sweep(settings, metrics)
        hooks.append(CatalogueControl(control, engine, dead_letters, metrics, sweep))
    if scale is not None:
        hooks.append(scale)
    worker = Worker(
        LoopConfig(
            top_k=settings.ranking.top_k,
            batch_size=settings.loop.batch_size,
            batch_max=settings.loop.batch_max or default_batch_max(device.type),
            batch_s=settings.loop.batch_ms / 1000.0,
            event_weights=dict(settings.events.event_weights),
            max_event_weight=settings.events.max_event_weight,
            max_clock_skew_s=settings.events.max_clock_skew_s,
            overlap={"auto": None, "on": True, "off": False}[settings.loop.publish_overlap],
            tune_threads=settings.torch_threads_tuned,
        ),
        source=source,
        dead_letters=dead_letters,
        sink=sink,
        engine=engine,
        metrics=metrics,
        restored_offsets=restored.offsets if restored else None,
        hooks=hooks,
    )
    return worker
