"""`--through-kafka`: the same replay through the real broker, the real worker(s) and Redis.

Each batch is produced to the clicks topic (key = user), the worker(s) process
it until every event of it is committed, and before the next batch is produced
that batch's users' lists are read back from Redis (`rec:{user}`): still a
prequential measurement. The protocol scores them like any method's.

One worker is stepped in this thread (`run_until`). N workers run scale-out on
threads (`start_on_thread`, as the demo does) in one group on a multi-partition
topic, each owning some users: the lists read back come from whichever worker
owns the user, and the wait is on the sum of their committed events.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import numpy.typing as npt

from stream.click_producer import ClickProducer
from stream.events import ClickEvent, encode_event
from worker.app import build_worker, open_sink
from worker.config.settings import Settings
from worker.loop.batch_loop import Worker
from worker.testing.private import start_on_thread
from worker.tools.evaluate.data import IntArray, Stream
from worker.tools.evaluate.protocol import SeenItems

_COMMIT_TIMEOUT_S = 120.0
_BALANCE_TIMEOUT_S = 120.0


class ThroughKafka:
    """A method whose lists are whatever the worker(s) published to Redis."""

    def __init__(self, settings: Settings, stream: Stream, workers: int = 1) -> None:
        """Build `workers` workers and the edges from `settings` (topic, Redis prefix, batch).

        With more than one, `settings` must be scale-out on a topic of at least
        `workers` partitions (`compare.wire_settings` does it); they are started
        and this returns once the group has spread every partition among them.
        """
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if workers > 1 and not settings.scale.scale_out:
            raise ValueError("several workers need RECSTREAM_SCALE_OUT=true to act as one model")
        self.name = "recstream through Kafka + Redis" + (
            f", {workers} workers" if workers > 1 else ""
        )
        self.workers: list[Worker] = [build_worker(settings) for _ in range(workers)]
        self._threads: list[threading.Thread] = []
        if workers > 1:
            self._threads = [start_on_thread(w) for w in self.workers]
            self._wait_balanced(settings.kafka.topic_partitions)
        elif not self.worker.run_until(lambda w: bool(w.source.assigned), _BALANCE_TIMEOUT_S):
            raise TimeoutError("the worker was not assigned its partition in time")
        self.producer = ClickProducer(settings.kafka.client_config(), settings.kafka.topic)
        self.reader = open_sink(settings.redis)
        self._user_ids = stream.user_ids
        self._item_ids = stream.item_ids
        self._code_of_item = {item: code for code, item in enumerate(stream.item_ids.tolist())}
        self.sent = 0
        self.batches_seen: list[int] = []  # worker batches per eval batch, to check alignment

    @property
    def worker(self) -> Worker:
        """The first (with one worker, the only) worker; none once closed."""
        return self.workers[0]

    def _wait_balanced(self, partitions: int) -> None:
        """Until every worker holds partitions and together they hold all (no event sent yet)."""
        deadline = time.monotonic() + _BALANCE_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_alive()
            held = [len(w.source.assigned) for w in self.workers]
            if all(held) and sum(held) == partitions:
                return
            time.sleep(0.1)
        raise TimeoutError(f"the group did not spread {partitions} partitions in time")

    def _check_alive(self) -> None:
        dead = [n for n, t in enumerate(self._threads) if not t.is_alive()]
        if dead:
            raise RuntimeError(f"worker thread(s) {dead} stopped mid-eval (see their logs)")

    def _events(self) -> int:
        return sum(w.totals.events for w in self.workers)

    def _batches(self) -> int:
        return sum(w.totals.batches for w in self.workers)

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
        """Produce the batch and wait until the worker(s) have committed every event of it."""
        user_ids, item_ids = self._user_ids[users].tolist(), self._item_ids[items].tolist()
        for user, item, stamp in zip(user_ids, item_ids, ts.tolist(), strict=True):
            event = ClickEvent(user=user, item=item, ts=stamp)
            self.producer.send(user.encode(), encode_event(event))
        if self.producer.flush(30.0):
            raise TimeoutError("the broker did not take the batch within 30 s")
        self.sent += len(user_ids)
        before = self._batches()
        if self._threads:
            done = self._wait_committed()
        else:
            self._wait_fetched()
            done = self.worker.run_until(lambda w: w.totals.events >= self.sent, _COMMIT_TIMEOUT_S)
        if not done:
            raise TimeoutError(f"the worker(s) did not commit {self.sent} events in time")
        self.batches_seen.append(self._batches() - before)

    def _wait_fetched(self) -> None:
        """One worker: until its consumer has fetched the whole batch, so it steps it whole.

        The batch is then the eval's, not whatever part of it the last fetch
        brought (Kafka timing): the cached high watermark of the one partition,
        from the last fetch response, covers every event sent.
        """
        source = self.worker.source
        from_start = dict.fromkeys(source.assigned, 0)
        deadline = time.monotonic() + _COMMIT_TIMEOUT_S
        while source.lag(from_start) < self.sent:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker's consumer did not fetch {self.sent} events")
            time.sleep(0.001)
        source.fetch_barrier()  # the watermark is set before the records are queued

    def _wait_committed(self) -> bool:
        """The workers run on their threads: wait for their totals (counted after the commit)."""
        deadline = time.monotonic() + _COMMIT_TIMEOUT_S
        while self._events() < self.sent and time.monotonic() < deadline:
            self._check_alive()
            time.sleep(0.002)
        return self._events() >= self.sent

    def close(self) -> None:
        """Stop the worker(s) (they leave the group) and close the clients."""
        for worker in self.workers:
            worker.request_stop()
        for thread in self._threads:
            thread.join(60.0)
        for worker in self.workers:
            worker.close()  # idempotent: a threaded worker closed itself when `run` ended
        # librdkafka clients live until collected: let go of them before the broker stops
        self.workers, self._threads = [], []
        self.producer.flush(5.0)
        self.reader.close()
