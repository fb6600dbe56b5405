"""The event time every input partition has reached: the batch clock's bound.

Kafka partitions are read unevenly. Under a backlog one poll may bring one
partition's month and another's first hour, or one partition alone. The newest
event then says how far one partition got, not the stream: a batch clock moved
to it makes every user of the partitions behind look idle and their clicks old
(the contract check's ml-100k replay, docs/accuracy.md). So, as event-time
stream processors do, the clock is bounded by a watermark: the least newest
event time over the partitions that still hold unread messages. A partition
read to its end holds nothing back; one with messages left that this worker has
not read from since it started holds the clock where it is until it has.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from stream.batch import DecodedBatch


class PartitionTimes:
    """The newest event time read from each partition of one topic, across batches."""

    def __init__(self) -> None:
        """Nothing read yet."""
        self.newest: dict[int, float] = {}

    def fold(self, batch: DecodedBatch) -> None:
        """Take in a batch's event times, each under its partition."""
        newest = self.newest
        for partition, ts in zip(batch.partitions, batch.event_ts, strict=True):
            if ts > newest.get(partition, -math.inf):
                newest[partition] = ts

    def watermark(self, behind: Iterable[int]) -> float:
        """The least newest time over `behind`, the partitions with messages left to read.

        `inf` when none is behind; `-inf` when one behind has not been read from yet
        (the clock then stays where it is).
        """
        return min((self.newest.get(p, -math.inf) for p in behind), default=math.inf)

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions revoked: another worker reads them now."""
        for partition in partitions:
            self.newest.pop(partition, None)
