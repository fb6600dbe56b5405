"""The batch loop: the one place that knows the order of things.

poll → decode (bad ⇒ DLQ) → learn → refresh index → top-K for touched users →
encode → pipelined Redis write (the ranker's step runs beside it) → DLQ flush → commit.

With `overlap` (the default on a GPU), batch N's Redis write runs on the
publish thread while batch N+1 is decoded, learned and ranked here; N's
offsets are committed only once its write was acknowledged, and N+1's write
starts only after that, so lists reach Redis in order and no offset runs
ahead of its lists (a crash re-reads, never skips). At most one write is in
flight; it is finished before a blocking poll, before partitions are revoked,
before a checkpoint snapshot and before stopping. Without it, each batch is
committed before the next poll.

Optional parts (scale-out, catalogue control, the checkpointer) plug in as
hooks (`worker.loop.hooks.LoopHook`): the loop calls each at its fixed points and
lends them what `worker.loop.hooks.Loop` names.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import structlog
import torch

from index.base import ItemIndex
from models.history import SeenHistory
from models.learner import OnlineLearner
from recstream.errors import RecstreamError
from stream.batch import DecodedBatch, decode_messages
from stream.dead_letters import DeadLetterProducer
from stream.events import EventLimits
from stream.kafka import KafkaSource, Polled
from stream.payload import ListEncoder, encode_recommendation
from stream.redis_sink import RedisSink
from worker import heap
from worker.engine.engine import Engine
from worker.engine.results import Learned, Ranked
from worker.engine.threads import intra_op_threads, threads_for_batch
from worker.errors import StopRequestedError
from worker.loop.batching import BatchSizer
from worker.loop.config import LoopConfig
from worker.loop.event_clock import PartitionTimes
from worker.loop.hooks import LoopHook, Parts
from worker.loop.publisher import InFlight, Publisher
from worker.loop.retry import Retry
from worker.loop.thread_tuner import ThreadTuner
from worker.loop.topic_watch import TopicWatch
from worker.loop.unfetchable import dead_letter_all, read_past
from worker.observability.accounting import Accounting, BatchReport
from worker.observability.metrics import Heartbeat, WorkerMetrics
from worker.observability.stages import StageTimer
from worker.observability.stats import WorkerTotals
from worker.scaleout.service import ScaleOut
from worker.storage.checkpoints import Checkpointer

__all__ = ["BatchReport", "LoopConfig", "Worker"]  # LoopConfig lives in worker.loop.config

log = structlog.get_logger("recstream.worker")
Hook = TypeVar("Hook", bound=LoopHook)
# the torch work a batch's thread count speeds or slows (the rank sets its own: side by side)
TUNED_STAGES = ("learn", "train")


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
        hooks: Sequence[LoopHook] = (),
    ) -> None:
        """Wire the parts and attach the `hooks` (called in this order); nothing runs yet.

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
        self.totals = WorkerTotals()
        self.accounting = Accounting(self.metrics, self.totals)
        self.accounting.evictions(engine.initial_evictions)
        self.heartbeat = Heartbeat(max_silence_s=max(60.0, 10 * config.batch_s))
        self._sizer = BatchSizer(config.batch_size, config.batch_max)
        # on a CPU, the rank's chunks side by side on the threads configured, one each
        self._rank_threads = torch.get_num_threads() if engine.device.type == "cpu" else 1
        # one thread or all for a large CPU batch, by what each measured (None: as set)
        self._tuner = (
            ThreadTuner(torch.get_num_threads())
            if config.tune_threads and engine.device.type == "cpu"
            else None
        )
        self._stop = threading.Event()
        self._closed = False
        self._retry = Retry(self._stop, self.metrics, self.heartbeat)
        self._publisher = Publisher(self._retry)
        self._encoder = ListEncoder()  # item ids encoded once per row, reused across batches
        self._in_flight: InFlight | None = None
        self.overlap = (
            config.overlap if config.overlap is not None else engine.device.type == "cuda"
        )
        self._finished: BatchReport | None = None  # the batch the current step finished
        # Offsets the model has learned up to: the restored checkpoint's, then each batch's.
        self.learned_offsets: dict[tuple[str, int], int] = dict(restored_offsets or {})
        self._topic = TopicWatch(source)
        source.before_revoke(self._revoked)
        # each partition's newest event time: the batch clock's bound (`event_clock`)
        self._times = PartitionTimes()
        self.hooks = list(hooks)
        for hook in self.hooks:
            hook.attach(self)

    def hook(self, kind: type[Hook]) -> Hook | None:
        """The hook of this kind plugged in, if any (for tests and tools to look at)."""
        return next((hook for hook in self.hooks if isinstance(hook, kind)), None)

    @property
    def scale(self) -> ScaleOut | None:
        """The scale-out hook (None: a lone worker)."""
        return self.hook(ScaleOut)

    @property
    def checkpointer(self) -> Checkpointer | None:
        """The checkpointer hook (None: no checkpoint directory)."""
        return self.hook(Checkpointer)

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
        """Finish the batches under way (publish, commit), then leave `run`. Thread-safe."""
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
        log.info(
            "worker_started",
            device=str(self.learner.device),
            index=self.index.kind,
            heap=heap.STATE,
        )
        code = 0
        try:
            while not self._stop.is_set():
                self.step()
            self.drain()
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
        """Step in this thread until `done(self)` or the timeout; leaves connections open.

        Returns with nothing in flight: every batch polled is published and committed.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._stop.is_set() and not done(self):
            self.step()
        self.drain()
        return done(self)

    def _on_signal(self, signum: int) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        self.request_stop()

    def close(self) -> None:
        """Commit a write that succeeded, leave the group, close every edge. Idempotent.

        Stops retries first: a write still failing is abandoned, its batch left
        uncommitted for a re-read.
        """
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        try:
            self.drain()
        except RecstreamError as exc:
            log.warning("in_flight_batch_uncommitted", error=str(exc), reread="at the next start")
        finally:
            self._publisher.close()
            self.source.close()  # its last revoke reaches the hooks first
            for hook in self.hooks:
                hook.close()
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

    # -- the pipeline ----------------------------------------------------------------------

    def step(self) -> BatchReport | None:
        """Advance the pipeline by one batch; returns the batch this step finished, if any.

        The batch polled here is learned and ranked while the one before it is
        written; its own write is finished (and committed) by a later step, at
        once when that step's poll finds nothing.
        """
        self.heartbeat.beat()
        self._finished = None
        self._skip_unfetchable()
        for hook in self.hooks:
            hook.tick()
        polled = self._poll(wait=self._in_flight is None)
        if polled.messages:
            self._process(polled)
        elif self._in_flight is not None:
            self.drain()  # idle: commit now rather than after the next wait
        else:
            self._idle()
        return self._finished

    def partitions_revoked(self, parts: Parts) -> None:
        """Partitions leave (the consumer's `on_revoke`, after the write in flight committed)."""
        for hook in self.hooks:
            hook.revoked(parts)

    def partitions_lost(self, parts: Parts) -> None:
        """Partitions were lost without a revoke (the consumer's `on_lost`)."""
        for hook in self.hooks:
            hook.lost(parts)

    def publish_cold_start(self) -> None:
        """Write the cold-start list now: what it may name has changed (an operator's word)."""
        cold = self._cold_start(time.time(), self.index.version)
        if cold is not None:
            self._retry("publish", lambda: self.sink.publish([], cold))

    def _skip_unfetchable(self) -> None:
        """Records too large to fetch: dead-lettered and read past (`worker.loop.unfetchable`)."""
        found = self._retry("poll", lambda: self.source.unfetchable(self.learned_offsets))
        if not found:
            return
        self.drain()  # the write in flight is committed before any offset moves past it
        dead_letter_all(found, self.dead_letters, self.metrics)
        self.flush_dead_letters()
        offsets = read_past(found, self.source)
        self.learned_offsets.update(offsets)
        self._retry("commit", lambda: self.source.commit(offsets))

    def _revoked(self, partitions: list[tuple[str, int]]) -> None:
        """Partitions going: commit the batch in flight, forget their event times."""
        self.drain()
        self._times.forget(p for _, p in partitions)

    def flush_dead_letters(self) -> None:
        """Deliver what was sent to the DLQ; what it cut short or lost is counted, not retried."""
        self.accounting.dead_letters(
            self._retry("dead_letter", lambda: self.dead_letters.flush(10.0))
        )

    def _poll(self, *, wait: bool) -> Polled:
        """What has arrived; waiting up to `batch_s` only with nothing in flight."""
        timeout_s = self.config.batch_s if wait else 0.0
        size = self._sizer.size
        polled = self._retry("poll", lambda: self.source.poll(size, timeout_s))
        self._sizer.observe(len(polled.messages))
        for error in polled.errors:
            log.warning("kafka_client_error", error=error)
        return polled

    def _process(self, polled: Polled) -> None:
        """Decode a batch, then learn, rank, publish and train on the threads its size asks for."""
        timer, started = StageTimer(), time.perf_counter()
        with timer("decode"):
            batch = self._decode(polled)
        threads = self._threads_for(len(batch))
        with intra_op_threads(threads):
            self._learn_and_publish(batch, timer, started)
        if self._tuner is not None:
            spent = sum(timer.seconds.get(stage, 0.0) for stage in TUNED_STAGES)
            self._tuner.observe(threads, len(batch), spent)
        if not self.overlap:
            self.drain()  # serial: published and committed before the next poll

    def _learn_and_publish(self, batch: DecodedBatch, timer: StageTimer, started: float) -> None:
        """Learn, rank and encode a batch, hand its lists to the publish thread, then train."""
        ranked, learned = self._learn_and_rank(batch, timer) if len(batch) else (None, None)
        with timer("encode"):
            now, version = time.time(), self.index.version
            payloads = (
                self._encoder.encode_lists(self.engine.lists(ranked), now, version)
                if ranked is not None
                else []
            )
            cold = self._cold_start(now, version) if payloads else None
        self.drain()  # the previous batch's write: one in flight at most
        self.learned_offsets.update(batch.next_offsets)
        for hook in self.hooks:
            hook.after_batch(batch, learned)
        published = self._publisher.submit(self.sink, payloads, cold)
        self._in_flight = InFlight(
            batch, learned, len(payloads), version, timer, started, published
        )
        with timer("train"):  # the ranker's step on the clicks it studied, beside the write
            self.engine.train_ranker()

    def _threads_for(self, events: int) -> int:
        """Torch's intra-op threads for a batch: on a CPU, one for a small batch, else tuned."""
        threads = torch.get_num_threads()
        if self.engine.device.type != "cpu":
            return threads
        if self._tuner is not None:
            return self._tuner.threads(events)
        return threads_for_batch(events, threads)

    def _decode(self, polled: Polled) -> DecodedBatch:
        limits = EventLimits(
            self.config.max_event_weight, time.time() + self.config.max_clock_skew_s
        )
        batch = decode_messages(polled.messages, self.config.event_weights, limits)
        for rejected in batch.rejected:
            self.dead_letters.send(rejected)
            self.metrics.dead_lettered.labels(reason=rejected.reason.split(":")[0]).inc()
        return batch

    def _learn_and_rank(
        self, batch: DecodedBatch, timer: StageTimer
    ) -> tuple[Ranked | None, Learned]:
        with timer("learn"):
            event_ts, weights = batch.arrays()
            self._times.fold(batch)
            behind = self.source.behind(self.learned_offsets | batch.next_offsets)
            learned = self.engine.learn(
                batch.users,
                batch.items,
                event_ts,
                weights,
                self._times.watermark(behind),
                backlog=self._sizer.backlog,
            )
        with timer("rank"):
            ranked = self.engine.rank(learned.to_rank, self._rank_threads)
        if not ranked.finite():
            self._withhold("users", users=len(ranked.user_rows))
            return None, learned
        return ranked, learned

    def drain(self) -> None:
        """Wait for the write in flight, then flush the DLQ and commit what it covers."""
        flight, self._in_flight = self._in_flight, None
        if flight is None:
            return
        batch, timer = flight.batch, flight.timer
        with timer("wait"):  # how long the loop blocked on the write, beyond what overlapped
            published = flight.published.result()  # its own error, if it failed, is raised
        timer.add("publish", published.seconds)
        with timer("commit"):
            if batch.rejected:
                self.flush_dead_letters()
            if not self._retry("commit", lambda: self.source.commit(batch.next_offsets)):
                # The group moved on (this member was evicted or is mid-rebalance): the batch
                # stays uncommitted and its partitions' next owner re-reads it.
                log.warning("commit_skipped_group_moved_on", messages=batch.messages)
        report = BatchReport.of(
            batch, flight.learned, flight.users, flight.index_version, published.acked_at, timer
        )
        lag = self.source.lag(self.learned_offsets)
        self.accounting.batch(report, self.engine, lag, time.perf_counter() - flight.started)
        self._finished = report

    def _idle(self) -> None:
        """Nothing arrived within `batch_s`, nothing in flight: the chores of an idle loop."""
        self.engine.refresh_idle()
        self._topic.check()
        # Idle or stalled: the lag gauge must still move, or a stall would look caught up.
        self.metrics.lag.set(self.source.lag(self.learned_offsets))

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

    # -- checkpoints -----------------------------------------------------------------------

    def checkpoint(self) -> Path | None:
        """Write the model, the seen history and the offsets they reflect now, in this thread.

        Finishes the batch in flight first. None when not configured or when the
        write failed (logged, counted, tried again at the next interval).
        """
        if self.checkpointer is None:
            return None
        self.drain()
        return self.checkpointer.write(self.engine, self.learned_offsets)
