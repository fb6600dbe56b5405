"""`--through-kafka`: the same replay through the real broker, the real worker and Redis.

Each batch is produced to the clicks topic, the in-process worker (built by
`worker.app.build_worker`, batch size = the eval's) steps until it has committed
it, and before the next batch is produced that batch's users' lists are read
back from Redis (`rec:{user}`). The protocol scores them like any method's.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from stream.events import ClickEvent, encode_event
from stream.kafka import ClickProducer
from worker.app import build_worker, open_sink
from worker.loop import Worker
from worker.settings import Settings
from worker.tools.evaluate.data import IntArray, Stream
from worker.tools.evaluate.protocol import SeenItems

_COMMIT_TIMEOUT_S = 120.0


class ThroughKafka:
    """A method whose lists are whatever the worker published to Redis."""

    name = "recstream through Kafka + Redis"

    def __init__(self, settings: Settings, stream: Stream) -> None:
        """Build the worker and the edges from `settings` (topic, Redis prefix, batch size)."""
        self.worker: Worker = build_worker(settings)
        self.producer = ClickProducer(settings.kafka.client_config(), settings.kafka.topic)
        self.reader = open_sink(settings.redis)
        self._user_ids = stream.user_ids
        self._item_ids = stream.item_ids
        self._code_of_item = {item: code for code, item in enumerate(stream.item_ids.tolist())}
        self.sent = 0
        self.batches_seen: list[int] = []  # events per worker batch, to check the alignment

    def recommend(self, users: IntArray, seen: SeenItems, k: int) -> IntArray:  # noqa: ARG002
        """Each user's list as Redis holds it now (the cold-start list for users without one)."""
        out = np.full((users.size, k), -1, dtype=np.int64)
        cold_start = self.reader.get_cold_start()
        for n, user in enumerate(self._user_ids[users].tolist()):
            value = self.reader.get(user) or cold_start
            if value is None:
                continue
            items = value["items"]
            if not isinstance(items, list):  # the contract: a list of str
                raise TypeError(
                    f"Redis holds {user}'s items as a {type(items).__name__}, not a list"
                )
            codes = [self._code_of_item[str(i)] for i in items[:k]]
            out[n, : len(codes)] = codes
        return out

    def learn(self, users: IntArray, items: IntArray, ts: npt.NDArray[np.float64]) -> None:
        """Produce the batch and step the worker until it has committed every event of it."""
        user_ids, item_ids = self._user_ids[users].tolist(), self._item_ids[items].tolist()
        for user, item, stamp in zip(user_ids, item_ids, ts.tolist(), strict=True):
            event = ClickEvent(user=user, item=item, ts=stamp)
            self.producer.send(user.encode(), encode_event(event))
        if self.producer.flush(30.0):
            raise TimeoutError("the broker did not take the batch within 30 s")
        self.sent += len(user_ids)
        before = self.worker.totals.batches
        done = self.worker.run_until(lambda w: w.totals.events >= self.sent, _COMMIT_TIMEOUT_S)
        if not done:
            raise TimeoutError(f"the worker did not commit {self.sent} events in time")
        self.batches_seen.append(self.worker.totals.batches - before)

    def close(self) -> None:
        """Stop the worker (it leaves the group) and close the clients."""
        self.worker.close()
        self.producer.flush(5.0)
        self.reader.close()
