"""A warning, every so often, while the input topic the worker waits on does not exist."""

from __future__ import annotations

import time

import structlog

from stream.kafka import KafkaSource

log = structlog.get_logger("recstream.worker")

CHECK_S = 10.0  # while nothing is assigned, how often to ask whether the topic exists


class TopicWatch:
    """Asks the broker about the topic only while nothing is assigned, at most every `CHECK_S`.

    A missing topic is waited for, not an error: it may be created after the
    worker starts. Saying so keeps an operator from waiting on a typo.
    """

    def __init__(self, source: KafkaSource) -> None:
        """Watch `source`'s topic; the first check comes at the first idle turn."""
        self._source = source
        self._next = 0.0

    def check(self) -> None:
        """Warn (`topic_missing`) if due and the broker says the topic does not exist."""
        now = time.monotonic()
        if self._source.assigned or now < self._next:
            return
        self._next = now + CHECK_S
        if self._source.topic_missing():
            log.warning(
                "topic_missing",
                topic=self._source.topic,
                role="input",
                waiting=True,
                recheck_in_s=CHECK_S,
            )
