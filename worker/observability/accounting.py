"""What each finished batch did, counted once: running totals, Prometheus metrics, one log line.

Who counts what (this is the one place that says it; the other modules point here):

    module        holds (in worker.observability)              filled by / read by
    stages        StageTimer: wall seconds per named stage of   the loop, per batch / this
                  one batch                                     module, via BatchReport
    accounting    BatchReport of each finished batch, folded    the loop, after each commit
                  into both below, logged once as
                  `batch_published`; the model's gauges; the
                  DLQ's cut-short and refused rejects
    stats         WorkerTotals: messages, events, dead          only this module / tests,
                  letters, batches, lists, latencies and        demo, bench, eval (the bench
                  stage seconds since start                     resets them after warm-up)
    metrics       WorkerMetrics: every Prometheus metric,       the modules below and this
                  defined once, served on /metrics              one / scrapes, the dashboard

What belongs to no finished batch is counted into `WorkerMetrics` where it
happens: the loop (dead letters by reason, lag, withheld lists, the snapshot's
seconds), the checkpointer (last write, failures), retries, the list sweep,
catalogue control and scale-out (hand-overs, staleness, re-reads, tombstones).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import structlog

from stream.batch import DecodedBatch
from stream.dead_letters import DeadLetterReport
from worker.engine.engine import Engine
from worker.engine.results import Learned
from worker.observability.metrics import WorkerMetrics
from worker.observability.stages import StageTimer
from worker.observability.stats import WorkerTotals

log = structlog.get_logger("recstream.worker")

_LATENCY_SAMPLES = 256  # per batch into the histogram: the reservoir keeps them all


@dataclass(frozen=True)
class BatchReport:
    """One finished batch (published, committed), for logs, metrics and in-process callers."""

    messages: int
    events: int
    dead_lettered: int
    users_published: int
    loss: float
    index_version: int
    latencies_s: npt.NDArray[np.float64]
    stage_s: dict[str, float]
    unlearned: int = 0  # events without a user or item row: committed, not learned
    evictions: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, cause) -> rows

    @classmethod
    def of(
        cls,
        batch: DecodedBatch,
        learned: Learned | None,
        users: int,
        index_version: int,
        acked_at: float,
        timer: StageTimer,
    ) -> BatchReport:
        """The report of a batch whose lists Redis acknowledged at `acked_at` (wall clock)."""
        produced = np.asarray(batch.produced_ts, dtype=np.float64)
        latencies: npt.NDArray[np.float64] = acked_at - produced[produced > 0]
        return cls(
            messages=batch.messages,
            events=len(batch),
            dead_lettered=len(batch.rejected),
            users_published=users,
            loss=learned.loss if learned else 0.0,
            index_version=index_version,
            latencies_s=latencies,
            stage_s=timer.seconds,
            unlearned=learned.unlearned if learned else 0,
            evictions=learned.evictions if learned else {},
        )


class Accounting:
    """Folds finished batches into `WorkerTotals` and `WorkerMetrics`; logs `batch_published`."""

    def __init__(self, metrics: WorkerMetrics, totals: WorkerTotals) -> None:
        """Count into these (the worker exposes both)."""
        self.metrics = metrics
        self.totals = totals

    def batch(self, report: BatchReport, engine: Engine, lag: int, duration_s: float) -> None:
        """Account one finished batch; `duration_s` is from its poll to its commit."""
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
        step = max(1, report.latencies_s.size // _LATENCY_SAMPLES)
        for latency in report.latencies_s[::step]:
            metrics.click_to_redis_seconds.observe(float(latency))
        metrics.events_unlearned.inc(report.unlearned)
        self.evictions(report.evictions)
        metrics.loss.set(report.loss)
        self.model(engine)
        metrics.index_version.set(report.index_version)
        metrics.last_commit.set(time.time())
        metrics.lag.set(lag)
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

    def model(self, engine: Engine) -> None:
        """The model's gauges: rows, the index's age, the ranker's recall, the two shares.

        And how long users fallen idle wait for their list between sessions.
        """
        metrics, learner = self.metrics, engine.learner
        fit = engine.stages.last_fit
        if fit is not None and fit.events:
            metrics.candidate_recall.set(float(fit.covered) / fit.events)
        stages = engine.stages
        metrics.taste_share.set(float(stages.taste.value) if stages.taste_column is not None else 0)
        between = stages.config.idle_after_s > 0 and stages.config.idle_popular_share > 0
        metrics.idle_popular_share.set(float(stages.idle_share.value) if between else 0)
        metrics.resting_lag.set(engine.resting.lag_s(engine.clock))
        metrics.index_built_at.set(engine.index.built_at)
        metrics.users.set(len(learner.users))
        metrics.items.set(len(learner.items))

    def evictions(self, evictions: dict[tuple[str, str], int]) -> None:
        """Rows freed, by kind and cause."""
        for (kind, cause), rows in evictions.items():
            self.metrics.evictions.labels(kind=kind, cause=cause).inc(rows)

    def dead_letters(self, report: DeadLetterReport) -> None:
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
