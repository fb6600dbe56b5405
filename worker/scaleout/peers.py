"""Scale-out off, yet not alone: say so at each rebalance, in a gauge and in `/readyz`'s body.

Two `recstream run` in one group without `RECSTREAM_SCALE_OUT` are two models
that never share items, and users moved between them lose their seen history
(their lists may name items they clicked). Nothing fails, so nothing else
would tell. A worker with scale-out off that sees another member in its
group, or holds fewer partitions than the topic has, logs
`scale_out_off_with_peers` after every rebalance, sets
`recstream_scale_out_off_with_peers` to 1 and names it in `/readyz` (still
200: it serves, only not as one model).
"""

from __future__ import annotations

import structlog

from stream.group import GroupView
from worker.observability.metrics import WorkerMetrics

log = structlog.get_logger("recstream.worker")

NOTE = "scale_out_off_with_peers"


class PeerWatch:
    """Warns when a worker with scale-out off shares its group (checked at each assignment)."""

    def __init__(self, view: GroupView, group: str, topic: str, metrics: WorkerMetrics) -> None:
        """Ask `view` about `group` and `topic`; report through `metrics`."""
        self.view = view
        self.group = group
        self.topic = topic
        self.metrics = metrics

    def check(self, assigned: int) -> bool:
        """After a rebalance that left this worker `assigned` partitions: peers or not."""
        members = self.view.members(self.group)
        partitions = self.view.partitions(self.topic)
        fewer = partitions is not None and assigned < partitions
        peers = (members is not None and members > 1) or fewer
        self.metrics.scale_out_off_with_peers.set(1 if peers else 0)
        if not peers:
            self.metrics.readiness_notes.pop(NOTE, None)
            return False
        self.metrics.readiness_notes[NOTE] = (
            f"{NOTE}: RECSTREAM_SCALE_OUT is off, but group {self.group!r} has "
            f"{members if members is not None else 'unknown'} members and this worker holds "
            f"{assigned} of {partitions if partitions is not None else '?'} partitions: "
            "each worker learns alone"
        )
        log.warning(
            NOTE,
            group=self.group,
            members=members,
            assigned=assigned,
            partitions=partitions,
            variable="RECSTREAM_SCALE_OUT",
            fix="set RECSTREAM_SCALE_OUT=true on every worker of the group (or run one)",
        )
        return True
