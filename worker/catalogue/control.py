"""Operator control of the catalogue: read the control topic, apply it, say what changed.

A message is applied before the next batch is ranked, and only after the write of the
batch before it was acknowledged, so every list written after the worker read a removal
leaves the item out. The lists already in Redis are the sweep's (worker/catalogue/sweep.py): told of
each newly hidden item here, it rewrites them off the loop within RECSTREAM_CONTROL_SWEEP_S.
Bad messages go to the dead-letter topic like bad clicks, with a reason.
It is one of the loop's hooks (`worker.loop.hooks.LoopHook`): each step's tick polls.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from stream.batch import DecodedBatch
from stream.control import ControlSource
from stream.dead_letters import DeadLetterProducer
from worker.catalogue.sweep import CatalogueSweep
from worker.engine.engine import Engine
from worker.engine.results import Learned
from worker.loop.hooks import Loop, Parts
from worker.observability.metrics import WorkerMetrics

log = structlog.get_logger("recstream.control")


class CatalogueControl:
    """Folds the control topic into the Engine's catalogue, a poll per loop step."""

    def __init__(
        self,
        source: ControlSource,
        engine: Engine,
        dead_letters: DeadLetterProducer,
        metrics: WorkerMetrics,
        sweep: CatalogueSweep | None = None,
    ) -> None:
        """Read from where the engine's (restored) catalogue says it had got to.

        With a `sweep`, items already hidden are swept at once too: a worker stopped
        between a removal and the end of its sweep leaves no list behind naming it.
        """
        self.source = source
        self.engine = engine
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.sweep = sweep
        self._loop: Loop | None = None
        metrics.items_hidden.set(len(engine.catalogue))
        if sweep is not None and len(engine.catalogue):
            sweep.hide(engine.catalogue.hidden())

    def attach(self, loop: Loop) -> None:
        """Finish `loop`'s write before a change; publish its cold-start list after one."""
        self._loop = loop

    def tick(self) -> None:
        """Operators' removals before this step's ranking; the cold-start list at once."""
        loop = self._loop
        if loop is None:
            return
        changed, rejected = self.poll(before_change=loop.drain)
        if rejected:
            loop.flush_dead_letters()
        if changed:
            loop.publish_cold_start()

    def after_batch(self, batch: DecodedBatch, learned: Learned | None) -> None:
        """Nothing to do: a batch changes no operator's word."""

    def revoked(self, parts: Parts) -> None:
        """Nothing to do: every worker reads the whole control topic, whatever it holds."""

    def lost(self, parts: Parts) -> None:
        """Nothing to do, as for a revoke."""

    def poll(self, before_change: Callable[[], None]) -> tuple[bool, int]:
        """Apply what arrived: (whether the catalogue changed, rejects sent to the DLQ).

        `before_change` runs first when operations arrived (the loop finishes its write
        in flight there, so no list ranked before a change is written after it).
        """
        polled = self.source.poll()
        for rejected in polled.rejected:
            self.dead_letters.send(rejected)
            self.metrics.dead_lettered.labels(reason=rejected.reason.split(":")[0]).inc()
            log.warning("control_rejected", offset=rejected.offset, reason=rejected.reason)
        if polled.ops:
            before_change()
        changed = False
        catalogue = self.engine.catalogue
        hidden: list[str] = []
        for op in polled.ops:
            if catalogue.apply(op.op, op.item):
                changed = True
                self.metrics.catalogue_ops.labels(op=op.op).inc()
                log.info("catalogue_changed", op=op.op, item=op.item, hidden=len(catalogue))
                if op.op == "restore":
                    hidden = [item for item in hidden if item != op.item]
                    if self.sweep is not None:
                        self.sweep.restore(op.item)
                else:
                    hidden.append(op.item)
        catalogue.control_offsets.update(self.source.next_offsets)
        self.metrics.items_hidden.set(len(catalogue))
        if hidden and self.sweep is not None:  # the stored lists, off the loop
            self.sweep.hide(hidden)
        return changed, len(polled.rejected)

    def close(self) -> None:
        """Leave the control topic; stop the sweep after the one under way."""
        self.source.close()
        if self.sweep is not None:
            self.sweep.close()
