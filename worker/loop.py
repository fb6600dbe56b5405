"""The batch loop: the one place that knows the order of things.

poll → decode (bad ⇒ DLQ) → learn → refresh index → top-K for touched users →
one pipelined Redis write → DLQ flush → commit. A batch is finished, published
and committed before the next poll, so a rebalance never finds work in flight
and a crash loses nothing that was committed.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import structlog

from index.base import ItemIndex
from models.history import SeenHistory
from models.learner import OnlineLearner
from stream.batch import DecodedBatch, decode_messages
from stream.dead_letters import DeadLetterProducer, DeadLetterReport
from stream.errors import TransientError
from stream.events import EventLimits
from stream.kafka import KafkaSource
from stream.payload import encode_recommendation
from stream.redis_sink import RedisSink
from worker.checkpoints import Checkpointer
from worker.engine import Engine, Learned, Ranked
from worker.errors import StopRequestedError
from worker.metrics import Heartbeat, WorkerMetrics
from worker.scale import ScaleOut
from worker.stats import WorkerTotals

T = TypeVar("T")
log = structlog.get_logger("recstream.worker")

_BACKOFF_START_S = 0.1
_BACKOFF_CAP_S = 5.0
_TOPIC_CHECK_S = 10.0  # while nothing is assigned, how often to ask whether the topic exists


@dataclass(frozen=True)
class LoopConfig:
    """The loop's own knobs (the components carry theirs)."""

    top_k: int
    batch_size: int
    batch_s: float
    event_weights: dict[str, float]
    checkpoint_dir: Path | None = None
    checkpoint_interval_s: float = 60.0
    max_event_weight: float = 10.0  # one event counts as at most this many clicks
    max_clock_skew_s: float = 300.0  # events stamped later than now + this are dead-lettered


@dataclass(frozen=True)
class BatchReport:
    """One finished batch, for logs, metrics and in-process callers."""

    messages: int
    events: int
    dead_lettered: int
    users_published: int
    loss: float
    index_version: int
    latencies_s: np.ndarray
    stage_s: dict[str, float]
    unlearned: int = 0  # events without a user or item row: committed, not learned
    evictions: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, cause) -> rows


class Worker:
    """Consumes clicks, learns, ranks and publishes, one micro-batch at a time."""

    def __init__(
        self,
        config: LoopConfig,
        *,
        source: KafkaSource,
        dead_letters: DeadLetterProducer,
        sink: RedisSink,
        engine: Engine,
        metrics: WorkerMetrics | None = None,
        restored_offsets: Mapping[tuple[str, int], int] | None = None,
        scale: ScaleOut | None = None,
    ) -> None:
        """Wire the parts; nothing runs until `step` or `run`.

        `restored_offsets` are those of the checkpoint the engine was restored
        from: they stand for their partitions in every checkpoint until a
        batch from the partition supersedes them, so a checkpoint always
        covers every partition whose state it holds.
        """
        self.config = config
        self.source = source
        self.dead_letters = dead_letters
        self.sink = sink
        self.engine = engine
        self.metrics = metrics or WorkerMetrics()
        self._count_evictions(self.engine.initial_evictions)
        self.totals = WorkerTotals()
        self.heartbeat = Heartbeat(max_silence_s=max(60.0, 10 * config.batch_s))
        self._stop = threading.Event()
        self._closed = False
        # Offsets the model has learned up to: the restored checkpoint's, then committed batches.
        self.learned_offsets: dict[tuple[str, int], int] = dict(restored_offsets or {})
        directory = config.checkpoint_dir
        self.checkpointer = (
            Checkpointer(directory, config.checkpoint_interval_s, self.metrics)
            if directory is not None
            else None
        )
        self._next_topic_check = 0.0
        self.scale = scale  # scale-out hook: hand-over and item feed (None: a lone worker)
        if scale is not None:
            scale.attach(source, self.learned_offsets)

    @property
    def learner(self) -> OnlineLearner:
        """The online model."""
        return self.engine.learner

    @property
    def history(self) -> SeenHistory:
        """Each user's recent clicks, excluded from their lists."""
        return self.engine.history

    @property
    def index(self) -> ItemIndex:
        """The item index the lists are searched in."""
        return self.engine.index

    # -- lifecycle -------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the current batch (publish, commit), then leave `run`. Thread-safe."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stop.is_set()

    def run(self, *, handle_signals: bool = True) -> int:
        """Loop until stopped; returns the process exit code (0 after a clean drain)."""
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda signum, _frame: self._on_signal(signum))
        log.info("worker_started", device=str(self.learner.device), index=self.index.kind)
        code = 0
        try:
            while not self._stop.is_set():
                self.step()
            self.checkpoint()  # a clean stop: the model and its offsets, to resume from
        except StopRequestedError:
            log.warning("worker_stopped_mid_retry", committed="up to the last finished batch")
            code = 1
        finally:
            self.close()
        log.info(
            "worker_stopped",
            events=self.totals.events,
            dead_lettered=self.totals.dead_lettered,
            batches=self.totals.batches,
            exit_code=code,
        )
        return code

    def run_until(self, done: Callable[[Worker], bool], timeout_s: float) -> bool:
        """Step in this thread until `done(self)` or the timeout; leaves connections open."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._stop.is_set():
            if done(self):
                return True
            self.step()
        return done(self)

    def _on_signal(self, signum: int) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        self.request_stop()

    def close(self) -> None:
        """Leave the group, flush the DLQ producer, close Redis and the index. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.source.close()
        if self.scale is not None:  # scale-out hook: after the consumer's last revoke
            self.scale.close()
        self.dead_letters.close()
        self.sink.close()
        self.index.close()

    # -- health ----------------------------------------------------------------------------

    def live(self) -> bool:
        """The loop is turning."""
        return self.heartbeat.alive()

    def ready(self) -> bool:
        """Assigned partitions, Redis answering, and an index once there are items."""
        index_ok = len(self.learner.items) == 0 or self.index.version > 0
        return bool(self.source.assigned) and index_ok and self.sink.ping()

    # -- one batch -------------------------------------------------------------------------

    def step(self) -> BatchReport | None:
        """Poll one micro-batch and carry it all the way to a commit."""
        self.heartbeat.beat()
        if self.scale is not None:  # scale-out hook: item feed in and out, state flush
            self.scale.tick()
        polled = self._retry(
            "poll", lambda: self.source.poll(self.config.batch_size, self.config.batch_s)
        )
        for error in polled.errors:
            log.warning("kafka_client_error", error=error)
        if not polled.messages:
            self.engine.refresh_idle()
            self._checkpoint_if_due(changed=False)  # state a failed write left unsaved
            self._watch_topic()
            # Idle or stalled: the lag gauge must still move, or a stall would look caught up.
            self.metrics.lag.set(self.source.lag(self.learned_offsets))
            return None
        stage: dict[str, float] = {}
        t0 = time.perf_counter()
        limits = EventLimits(
            self.config.max_event_weight, time.time() + self.config.max_clock_skew_s
        )
        batch = decode_messages(polled.messages, self.config.event_weights, limits)
        for rejected in batch.rejected:
            self.dead_letters.send(rejected)
            self.metrics.dead_lettered.labels(reason=rejected.reason.split(":")[0]).inc()
        stage["decode"] = time.perf_counter() - t0
        ranked, learned = self._learn_and_rank(batch, stage) if len(batch) else (None, None)
        t1 = time.perf_counter()
        now = time.time()
        version = self.index.version
        payloads = self.engine.payloads(ranked, now, version) if ranked is not None else []
        cold = self._cold_start(now, version) if payloads else None
        self._retry("publish", lambda: self.sink.publish(payloads, cold))
        acked = time.time()
        stage["publish"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        if batch.rejected:
            self._record(self._retry("dead_letter", lambda: self.dead_letters.flush(10.0)))
        if not self._retry("commit", lambda: self.source.commit(batch.next_offsets)):
            # The group moved on (this member was evicted or is mid-rebalance): the batch
            # stays uncommitted and its partitions' next owner re-reads it.
            log.warning("commit_skipped_group_moved_on", messages=batch.messages)
        self.learned_offsets.update(batch.next_offsets)
        if self.scale is not None:  # scale-out hook: which partitions' users and items changed
            self.scale.after_batch(batch, learned)
        self._checkpoint_if_due(changed=True)
        stage["commit"] = time.perf_counter() - t2
        produced = np.asarray(batch.produced_ts, dtype=np.float64)
        latencies = acked - produced[produced > 0]
        report = BatchReport(
            messages=batch.messages,
            events=len(batch),
            dead_lettered=len(batch.rejected),
            users_published=len(payloads),
            loss=learned.loss if learned else 0.0,
            index_version=version,
            latencies_s=latencies,
            stage_s=stage,
            unlearned=learned.unlearned if learned else 0,
            evictions=learned.evictions if learned else {},
        )
        self._account(report, time.perf_counter() - t0)
        return report

    def _learn_and_rank(
        self, batch: DecodedBatch, stage: dict[str, float]
    ) -> tuple[Ranked | None, Learned]:
        t0 = time.perf_counter()
        event_ts, weights = batch.arrays()
        learned = self.engine.learn(batch.users, batch.items, event_ts, weights)
        stage["learn"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        ranked = self.engine.rank(learned.touched)
        stage["rank"] = time.perf_counter() - t1
        if not ranked.finite():
            self._withhold("users", users=len(ranked.user_rows))
            return None, learned
        return ranked, learned

    def _cold_start(self, now: float, version: int) -> bytes | None:
        rec = self.engine.cold_start()
        if not all(math.isfinite(score) for score in rec.scores):
            self._withhold("cold_start", users=0)
            return None
        return encode_recommendation(rec, now, version)

    def _withhold(self, kind: str, users: int) -> None:
        """Lists with NaN or infinite scores stay unpublished; Redis keeps the previous ones."""
        self.metrics.lists_withheld.labels(kind=kind, reason="non_finite_scores").inc()
        log.error("lists_withheld", kind=kind, reason="non_finite_scores", users=users)

    def _watch_topic(self) -> None:
        """While nothing is assigned, warn every so often if the input topic does not exist."""
        now = time.monotonic()
        if self.source.assigned or now < self._next_topic_check:
            return
        self._next_topic_check = now + _TOPIC_CHECK_S
        if self.source.topic_missing():
            log.warning(
                "topic_missing",
                topic=self.source.topic,
                role="input",
                waiting=True,
                recheck_in_s=_TOPIC_CHECK_S,
            )

    def checkpoint(self) -> Path | None:
        """Write the model, the seen history and the offsets they reflect (if configured).

        None when not configured or when the write failed (logged, counted, tried again at
        the next interval): a disk problem never stops the loop.
        """
        if self.checkpointer is None:
            return None
        return self.checkpointer.write(self.engine, self.learned_offsets)

    def _checkpoint_if_due(self, *, changed: bool) -> None:
        """Checkpoint once an interval has passed, if anything was learned since the last one."""
        checkpointer = self.checkpointer
        if checkpointer is None:
            return
        checkpointer.unsaved |= changed
        if checkpointer.unsaved and checkpointer.due():
            self.checkpoint()

    def _record(self, report: DeadLetterReport) -> None:
        """Log and count what the DLQ cut short or refused for good; neither holds the commit."""
        for rejected in report.truncated:
            self.metrics.dead_letter_truncated.inc()
            log.warning(
                "dead_letter_truncated",
                topic=rejected.topic,
                partition=rejected.partition,
                offset=rejected.offset,
                original_size=len(rejected.value or b""),
            )
        for lost in report.undeliverable:
            rejected = lost.rejected
            self.metrics.dead_letter_undeliverable.labels(error=lost.error).inc()
            log.error(
                "dead_letter_undeliverable",
                topic=rejected.topic,
                partition=rejected.partition,
                offset=rejected.offset,
                reason=rejected.reason,
                error=lost.error,
                detail=lost.detail,
                size=len(rejected.value or b""),
                skipped="recorded here only; the offset is committed past",
            )

    def _retry(self, stage: str, action: Callable[[], T]) -> T:
        """Run `action`, retrying transient faults with capped exponential backoff."""
        delay = _BACKOFF_START_S
        while True:
            try:
                return action()
            except TransientError as exc:
                self.metrics.retries.labels(stage=stage).inc()
                log.warning("transient_failure", stage=stage, error=str(exc), retry_in_s=delay)
                if self._stop.wait(delay):
                    raise StopRequestedError(stage) from exc
                self.heartbeat.beat()
                delay = min(delay * 2, _BACKOFF_CAP_S)

    def _account(self, report: BatchReport, duration_s: float) -> None:
        totals, metrics = self.totals, self.metrics
        totals.messages += report.messages
        totals.events += report.events
        totals.dead_lettered += report.dead_lettered
        totals.batches += 1
        totals.users_published += report.users_published
        totals.latency.add(report.latencies_s)
        metrics.events.inc(report.events)
        metrics.batches.inc()
        metrics.users_published.inc(report.users_published)
        for name, seconds in report.stage_s.items():
            metrics.batch_seconds.labels(stage=name).observe(seconds)
            totals.stage_s[name] = totals.stage_s.get(name, 0.0) + seconds
        for latency in report.latencies_s[:: max(1, report.latencies_s.size // 256)]:
            metrics.click_to_redis_seconds.observe(float(latency))
        metrics.events_unlearned.inc(report.unlearned)
        self._count_evictions(report.evictions)
        metrics.loss.set(report.loss)
        if self.learner.transition is not None:
            metrics.transition_weight.set(self.learner.transition.weight)
        metrics.index_version.set(report.index_version)
        metrics.index_built_at.set(self.index.built_at)
        metrics.users.set(len(self.learner.users))
        metrics.items.set(len(self.learner.items))
        metrics.last_commit.set(time.time())
        metrics.lag.set(self.source.lag(self.learned_offsets))
        log.info(
            "batch_published",
            messages=report.messages,
            events=report.events,
            unlearned=report.unlearned,
            dead_lettered=report.dead_lettered,
            users=report.users_published,
            loss=round(report.loss, 4),
            index_version=report.index_version,
            duration_ms=round(duration_s * 1000, 2),
            **{f"evicted_{kind}_{cause}": n for (kind, cause), n in report.evictions.items()},
        )

    def _count_evictions(self, evictions: dict[tuple[str, str], int]) -> None:
        for (kind, cause), rows in evictions.items():
            self.metrics.evictions.labels(kind=kind, cause=cause).inc(rows)
