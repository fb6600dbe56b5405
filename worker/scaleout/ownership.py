"""A partition's users handed over through the state topic: restored on assign, flushed on revoke.

State topic `{topic}.state`, as many partitions as the input, key = user id.
Every `state_flush_s`, and on revoke, the users changed in each owned
partition are written, then a marker holding the input offset that state
reflects, and the acknowledgements are waited for. On assign, before
anything is consumed, the partition is read to its end, the latest record of
each user restored and a marker of this worker's own written; the input
starts at the marker, so events after it are re-read, never skipped. A
partition lost without a revoke is dropped unflushed: its new owner may
already be writing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import structlog

from stream.errors import TransientError
from stream.sync_topics import PartitionReader, SyncProducer
from worker.engine.engine import Engine
from worker.scaleout.codec import MARKER_KEY, decode_partition, encode_marker, encode_users
from worker.scaleout.handover import drop_users, export_users, import_users
from worker.scaleout.ledger import UserLedger
from worker.scaleout.metrics import ScaleMetrics

log = structlog.get_logger("recstream.worker")


class Ownership:
    """Hands the users of this worker's input partitions in and out through the state topic."""

    def __init__(
        self,
        topic: str,
        state_topic: str,
        engine: Engine,
        *,
        origin: str,
        producer: SyncProducer,
        reader: PartitionReader,
        measures: ScaleMetrics,
    ) -> None:
        """Users of `engine` read by input `topic`, kept on `state_topic`, markers by `origin`."""
        self.topic = topic
        self.state_topic = state_topic
        self.engine = engine
        self.origin = origin
        self.producer = producer
        self.reader = reader
        self.measures = measures
        self.ledger = UserLedger(engine.learner.users, engine.rows.users.limits.max_rows)
        self._markers: dict[int, int] = {}  # partition -> offset of the last marker written

    def restore(self, committed: Mapping[int, int | None]) -> dict[int, int]:
        """Restore the users of the assigned partitions; where each one's input starts.

        `committed` holds each partition's committed offset (None: none yet).
        """
        starts = {partition: self._restore(partition, at) for partition, at in committed.items()}
        self.producer.flush()  # the new markers are durable before anything is consumed
        return starts

    def _restore(self, partition: int, committed: int | None) -> int:
        start = time.perf_counter()
        engine, learner = self.engine, self.engine.learner
        records = self.reader.read(self.state_topic, partition)
        read_s = time.perf_counter() - start
        state = decode_partition(records, learner.config.dim + 1)
        rows = engine.admit_users(state.users.ids) if state.users.ids else np.empty(0, np.int64)
        restored = import_users(learner, engine.rows.users, state.users, rows, engine.admit_items)
        kept = rows >= 0
        every = np.asarray(state.users.ids, dtype=object)
        self.ledger.hold(rows[kept], every[kept], partition, changed=False)
        # No marker yet (a partition never handed over): the group's commit, else its start.
        offset = state.marker if state.marker is not None else (committed or 0)
        self._mark(partition, offset)
        self.ledger.owned.add(partition)
        self.ledger.refused(partition, [str(user) for user in every[~kept]])
        rereads = max(0, (committed or 0) - offset)
        self.measures.handed_over("in", restored, time.perf_counter() - start)
        self.measures.reread(rereads)
        log.info(
            "partition_restored",
            partition=partition,
            records=state.records,
            users=restored,
            start_offset=offset,
            committed=committed,
            rereads=rereads,
            read_ms=round(read_s * 1000, 1),
            duration_ms=round((time.perf_counter() - start) * 1000, 1),
        )
        return offset

    def _mark(self, partition: int, offset: int) -> None:
        value = encode_marker(offset, self.origin)
        self.producer.send(self.state_topic, MARKER_KEY, value, partition)
        self._markers[partition] = offset

    def hand_over(self, partitions: list[int], learned: Mapping[tuple[str, int], int]) -> None:
        """Revoked: flush the partitions' users (and wait for the acks), then drop them."""
        start = time.perf_counter()
        users = self.flush(partitions, learned)
        self.drop(partitions)
        self.measures.handed_over("out", users, time.perf_counter() - start)
        log.info(
            "partitions_handed_over",
            partitions=partitions,
            users=users,
            duration_ms=round((time.perf_counter() - start) * 1000, 1),
        )

    def lost(self, partitions: list[int]) -> None:
        """Lost without a revoke: drop the partitions' users, write nothing (not ours now)."""
        self.drop(partitions)
        log.warning("partitions_lost", partitions=partitions, flushed=False)

    def drop(self, partitions: list[int]) -> None:
        """Forget the partitions' users here (their rows are reused later) and their markers."""
        for partition in partitions:
            drop_users(self.engine.learner, self.ledger.drop(partition))
            self._markers.pop(partition, None)

    def flush_owned(self, learned: Mapping[tuple[str, int], int]) -> None:
        """The periodic flush of every owned partition; a failure is tried at the next one."""
        start = time.perf_counter()
        owned = sorted(self.ledger.owned)
        try:
            users = self.flush(owned, learned)
        except TransientError as exc:  # tried again at the next interval; nothing is lost
            log.warning("state_flush_failed", error=str(exc))
            return
        if users:
            log.info(
                "state_flushed",
                partitions=len(owned),
                users=users,
                duration_ms=round((time.perf_counter() - start) * 1000, 1),
            )

    def flush(self, partitions: list[int], learned: Mapping[tuple[str, int], int]) -> int:
        """Write changed users and a marker per partition, wait for the acks; users written.

        `learned` holds the input offsets the model has learned up to: the markers'.
        """
        engine, ledger = self.engine, self.ledger
        users = 0
        ledger.note_freed()
        for partition in partitions:
            offset = learned.get((self.topic, partition))
            self._send_tombstones(partition)
            rows = ledger.rows_of(partition, dirty_only=True)
            if rows.size:
                state = export_users(engine.learner, engine.rows.users, rows)
                for key, value in encode_users(state):
                    self.producer.send(self.state_topic, key, value, partition)
                users += int(rows.size)
            if offset is not None and offset != self._markers.get(partition):
                self._mark(partition, offset)
        self.producer.flush()
        for partition in partitions:
            ledger.flushed(partition)
        return users

    def _send_tombstones(self, partition: int) -> None:
        """Delete evicted users from the state topic (a None value), unless back since."""
        gone = self.ledger.take_tombstones(partition)
        for user in gone:  # one back since has a row again: its own write follows
            self.producer.send(self.state_topic, user.encode(), None, partition)
        if gone:
            self.measures.tombstones(len(gone))
