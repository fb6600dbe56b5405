"""Checkpoints at the worker's edge: the directory opened at start, writes that never stop the loop.

At start a directory that cannot hold checkpoints is a configuration error
(exit 2, naming `RECSTREAM_CHECKPOINT_DIR`); what a killed write left is
removed, and checkpoints that fail to verify are logged one by one and moved
aside. At run time the loop only snapshots to host memory; the write runs on a
thread of its own, and one the disk refuses is logged, counted and tried
again at the next interval while the loop goes on. The checkpointer is one of
the loop's hooks (`worker.loop.hooks.LoopHook`): a batch learned, or the
catalogue changed, leaves the model unsaved; a step's tick snapshots when due.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import structlog
import torch

from models.checkpoint import Restored, Snapshot, snapshot
from models.errors import CheckpointError
from stream.batch import DecodedBatch
from worker.engine.engine import Engine
from worker.engine.results import Learned
from worker.errors import SettingsError
from worker.loop.hooks import Loop, Parts
from worker.observability.metrics import WorkerMetrics
from worker.storage.checkpoint_dir import SET_ASIDE, open_directory
from worker.storage.checkpoint_files import write_snapshot

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
    """Snapshots the engine at a batch boundary and writes it on a thread of its own (a hook).

    The loop pays only for the host copy; the write (safetensors, fsync,
    checksum) runs in the background, one at a time: while one is writing, the
    next is deferred until it is done. A refused write is logged, counted and
    tried again an interval after the attempt.
    """

    def __init__(self, directory: Path, interval_s: float, metrics: WorkerMetrics) -> None:
        """Start the interval now: the first write is due `interval_s` from here."""
        self.directory = directory
        self.interval_s = interval_s
        self.metrics = metrics
        self.unsaved = False  # learned since the last snapshot written (the hooks set it)
        self._last = time.monotonic()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recstream-ckpt")
        self._writing: Future[Path | None] | None = None
        self._loop: Loop | None = None
        self._catalogue = 0  # the catalogue's version at the last look

    def attach(self, loop: Loop) -> None:
        """Snapshot `loop`'s engine and offsets; its catalogue as it stands counts as saved."""
        self._loop = loop
        self._catalogue = loop.engine.catalogue.version

    def tick(self) -> None:
        """At this batch boundary, snapshot when due; the write goes on in the background.

        The batch in flight is finished first: the snapshot then holds exactly
        the batches its offsets cover, each one published, so a resume from it
        neither skips a list nor learns a click twice.
        """
        loop = self._loop
        if loop is None:
            return
        if loop.engine.catalogue.version != self._catalogue:  # an operator's change to save
            self._catalogue = loop.engine.catalogue.version
            self.unsaved = True
        if not self.due():
            return
        loop.drain()
        start = time.perf_counter()
        self.start(loop.engine, loop.learned_offsets)
        self.metrics.batch_seconds.labels(stage="snapshot").observe(time.perf_counter() - start)

    def after_batch(self, batch: DecodedBatch, learned: Learned | None) -> None:  # noqa: ARG002
        """A batch was learned: the model is unsaved."""
        self.unsaved = True

    def revoked(self, parts: Parts) -> None:
        """Nothing to do: a checkpoint holds every partition's offsets it has learned."""

    def lost(self, parts: Parts) -> None:
        """Nothing to do, as for a revoke."""

    @property
    def writing(self) -> bool:
        """Whether a background write is still going."""
        return self._writing is not None and not self._writing.done()

    def due(self) -> bool:
        """Whether to snapshot: unsaved learning, an interval since the last try, no write going."""
        return (
            self.unsaved and time.monotonic() - self._last >= self.interval_s and not self.writing
        )

    def start(self, engine: Engine, offsets: Mapping[tuple[str, int], int]) -> None:
        """Snapshot now and write it in the background.

        `offsets` must be exactly those of the batches the engine has learned,
        and each of those published: a resume from it starts right after them.
        """
        self.wait()  # the last write, done by now: an error it did not expect surfaces here
        taken = self._snapshot(engine, offsets)
        self._writing = self._writer.submit(self._write, *taken)

    def write(self, engine: Engine, offsets: Mapping[tuple[str, int], int]) -> Path | None:
        """Snapshot and write in this thread, after any background write: the final checkpoint.

        None when the write was refused (logged and counted).
        """
        self.wait()
        return self._write(*self._snapshot(engine, offsets))

    def wait(self) -> None:
        """Let a background write finish."""
        if self._writing is not None:
            self._writing.result()
            self._writing = None

    def close(self) -> None:
        """Let a background write finish (rather than leave a temporary behind), stop the thread."""
        self._writer.shutdown(wait=True)

    def _snapshot(
        self, engine: Engine, offsets: Mapping[tuple[str, int], int]
    ) -> tuple[Snapshot, float, dict[str, int]]:
        start = time.perf_counter()
        self._last = time.monotonic()  # a failure waits an interval too, never every batch
        self.unsaved = False
        taken = snapshot(
            engine.learner,
            dict(offsets),
            engine.rows,
            engine.catalogue,
            engine.stages.state_dict(),
        )
        counts = {
            "users": len(engine.learner.users),
            "items": len(engine.learner.items),
            "partitions": len(offsets),
        }
        return taken, time.perf_counter() - start, counts

    def _write(self, taken: Snapshot, snapshot_s: float, counts: dict[str, int]) -> Path | None:
        start = time.perf_counter()
        try:
            path = write_snapshot(self.directory, taken)
        except CheckpointError as exc:
            self.unsaved = True  # what was snapshotted is still unsaved: the next interval retries
            self.metrics.checkpoint_failures.inc()
            log.error(  # noqa: TRY400  (the error names its cause; a traceback per interval is noise)
                "checkpoint_failed",
                directory=str(self.directory),
                error=str(exc),
                retry_in_s=self.interval_s,
            )
            return None
        self.metrics.last_checkpoint.set(time.time())
        log.info(
            "checkpoint_written",
            path=str(path),
            **counts,
            snapshot_ms=round(snapshot_s * 1000, 1),
            duration_ms=round((time.perf_counter() - start) * 1000, 1),
        )
        return path
