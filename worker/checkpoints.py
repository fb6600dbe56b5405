"""Checkpoints at the worker's edge: the directory opened at start, writes that never stop the loop.

At start a directory that cannot hold checkpoints is a configuration error
(exit 2, naming `RECSTREAM_CHECKPOINT_DIR`); what a killed write left is
removed, and checkpoints that fail to verify are logged one by one and moved
aside. At run time a write the disk refuses is logged, counted and tried
again at the next interval while the loop goes on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import structlog
import torch

from models.checkpoint import Restored
from models.checkpoint import save as save_checkpoint
from models.checkpoint_dir import SET_ASIDE, open_directory
from models.errors import CheckpointError
from worker.engine import Engine
from worker.errors import SettingsError
from worker.metrics import WorkerMetrics

log = structlog.get_logger("recstream.worker")


def restore_at_start(directory: Path, device: torch.device) -> Restored | None:
    """Open the checkpoint directory and restore the newest checkpoint that verifies, saying why."""
    try:
        opened = open_directory(directory, device)
    except CheckpointError as exc:
        raise SettingsError(f"RECSTREAM_CHECKPOINT_DIR: {exc}") from exc
    if opened.removed:
        log.info("checkpoint_leftovers_removed", directory=str(directory), files=opened.removed)
    for name, reason in opened.skipped:
        log.error("checkpoint_skipped", file=name, reason=reason)
    if opened.set_aside:
        log.warning(
            "checkpoint_set_aside", directory=str(directory / SET_ASIDE), files=opened.set_aside
        )
    if opened.restored is None and opened.skipped:
        log.warning(
            "checkpoint_none_valid",
            directory=str(directory),
            skipped=len(opened.skipped),
            starting="empty: offsets from the group's commits",
        )
    return opened.restored


class Checkpointer:
    """Writes the engine's state with the offsets it reflects, every `interval_s` and on demand."""

    def __init__(self, directory: Path, interval_s: float, metrics: WorkerMetrics) -> None:
        """Start the interval now: the first write is due `interval_s` from here."""
        self.directory = directory
        self.interval_s = interval_s
        self.metrics = metrics
        self.unsaved = False  # learned since the last checkpoint written (the loop sets it)
        self._last = time.monotonic()

    def due(self) -> bool:
        """Whether an interval has passed since the last attempt, written or failed."""
        return time.monotonic() - self._last >= self.interval_s

    def write(self, engine: Engine, offsets: Mapping[tuple[str, int], int]) -> Path | None:
        """Write one checkpoint; a refused write is logged and counted, and None returned."""
        start = time.perf_counter()
        self._last = time.monotonic()  # a failure waits an interval too, never every batch
        try:
            path = save_checkpoint(
                self.directory, engine.learner, engine.history, dict(offsets), engine.rows
            )
        except CheckpointError as exc:
            self.metrics.checkpoint_failures.inc()
            log.error(  # noqa: TRY400  (the error names its cause; a traceback per interval is noise)
                "checkpoint_failed",
                directory=str(self.directory),
                error=str(exc),
                retry_in_s=self.interval_s,
            )
            return None
        self.unsaved = False
        self.metrics.last_checkpoint.set(time.time())
        log.info(
            "checkpoint_written",
            path=str(path),
            users=len(engine.learner.users),
            items=len(engine.learner.items),
            partitions=len(offsets),
            duration_ms=round((time.perf_counter() - start) * 1000, 1),
        )
        return path
