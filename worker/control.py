"""Operator control of the catalogue: read the control topic, apply it, say what changed.

A message is applied before the next batch is ranked, and only after the write of the
batch before it was acknowledged, so every list written after the worker read a removal
leaves the item out (lists already in Redis keep it until their user's next click or
their TTL). Bad messages go to the dead-letter topic like bad clicks, with a reason.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from stream.control import ControlSource
from stream.dead_letters import DeadLetterProducer
from worker.engine import Engine
from worker.metrics import WorkerMetrics

log = structlog.get_logger("recstream.control")


class CatalogueControl:
    """Folds the control topic into the Engine's catalogue, a poll per loop step."""

    def __init__(
        self,
        source: ControlSource,
        engine: Engine,
        dead_letters: DeadLetterProducer,
        metrics: WorkerMetrics,
    ) -> None:
        """Read from where the engine's (restored) catalogue says it had got to."""
        self.source = source
        self.engine = engine
        self.dead_letters = dead_letters
        self.metrics = metrics
        metrics.items_hidden.set(len(engine.catalogue))

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
        for op in polled.ops:
            if catalogue.apply(op.op, op.item):
                changed = True
                self.metrics.catalogue_ops.labels(op=op.op).inc()
                log.info("catalogue_changed", op=op.op, item=op.item, hidden=len(catalogue))
        catalogue.control_offsets.update(self.source.next_offsets)
        self.metrics.items_hidden.set(len(catalogue))
        return changed, len(polled.rejected)

    def close(self) -> None:
        """Leave the control topic."""
        self.source.close()
