"""No single message stops a partition: a reject the DLQ cannot take whole is never looped on."""

from __future__ import annotations

import json
from typing import Any

import msgpack
from fault_helpers import click_messages, click_stream

from stream.dead_letters import PREFIX_BYTES, DeadLetterProducer
from stream.payload import decode_recommendation
from worker.app import build_worker

BIG_PRODUCER = {"message.max.bytes": 10_000_000}


def _event_of(size: int, user: str = "u0") -> bytes:
    return msgpack.packb({"user": user, "item": "i0", "x": "y" * size})


def _merged(*ends: dict[int, int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for part in ends:
        for partition, end in part.items():
            out[partition] = max(out.get(partition, 0), end)
    return out


def test_a_5_mb_message_amid_good_ones_is_dead_lettered_as_a_prefix_and_the_rest_go_on(
    make_settings: Any,
    names: Any,
    produce: Any,
    committed: Any,
    read_topic: Any,
    redis_client: Any,
) -> None:
    """A 5 MB event reaches the DLQ as a prefix, a 500 KB one whole; every good one is published."""
    worker = build_worker(make_settings())
    clicks = click_stream(0, 600)
    big, mid = _event_of(5_000_000), _event_of(500_000, "u1")
    before = produce(names.topic, click_messages(clicks[:300]))
    big_at = produce(names.topic, [(b"u0", big)], config=BIG_PRODUCER)
    mid_at = produce(names.topic, [(b"u1", mid)], config=BIG_PRODUCER)
    after = produce(names.topic, click_messages(clicks[300:]))
    total = len(clicks) + 2
    try:
        assert worker.run_until(lambda w: w.totals.messages >= total, timeout_s=120)
        for _ in range(3):  # still turning, nothing read twice
            worker.step()
    finally:
        worker.close()
    assert worker.totals.messages == total
    assert worker.totals.events == len(clicks)
    assert worker.totals.dead_lettered == 2
    assert committed(names.group, names.topic) == _merged(
        before.ends, big_at.ends, mid_at.ends, after.ends
    )
    dlq = {dict(m.headers())["recstream.source"]: m for m in read_topic(names.dlq_topic, 2)}
    [(big_partition, big_end)] = big_at.ends.items()
    [(mid_partition, mid_end)] = mid_at.ends.items()
    prefix = dlq[f"{names.topic}/{big_partition}/{big_end - 1}".encode()]
    assert prefix.value() == big[:PREFIX_BYTES]
    headers = dict(prefix.headers())
    assert headers["recstream.reason"] == b"too_large"
    assert headers["recstream.original_size"] == str(len(big)).encode()
    whole = dlq[f"{names.topic}/{mid_partition}/{mid_end - 1}".encode()]
    assert whole.value() == mid
    assert "recstream.original_size" not in dict(whole.headers())
    assert worker.metrics.dead_letter_truncated._value.get() == 1
    last_ts = {user: ts for user, _, ts in clicks}
    for user, ts in last_ts.items():
        raw = redis_client.get(f"{names.prefix}{user}")
        assert raw is not None, user
        assert decode_recommendation(raw)["event_ts"] >= ts, user


def test_a_reject_the_dlq_refuses_for_good_is_recorded_and_committed_past(
    make_settings: Any, names: Any, produce: Any, committed: Any
) -> None:
    """A DLQ that refuses even the prefix: counted and logged, never retried, offsets move on."""
    settings = make_settings()
    worker = build_worker(settings)
    worker.dead_letters.close()
    # A DLQ whose limit is under the prefix: the reject can be delivered neither whole nor cut.
    worker.dead_letters = DeadLetterProducer(
        {**settings.kafka.client_config(), "message.max.bytes": 20_000}, names.dlq_topic
    )
    clicks = click_stream(0, 200)
    sent = [
        produce(names.topic, click_messages(clicks[:100])),
        produce(names.topic, [(b"u0", _event_of(100_000))]),
        produce(names.topic, click_messages(clicks[100:])),
    ]
    try:
        assert worker.run_until(lambda w: w.totals.messages >= len(clicks) + 1, timeout_s=60)
        worker.step()
    finally:
        worker.close()
    assert worker.totals.events == len(clicks)
    assert committed(names.group, names.topic) == _merged(*(s.ends for s in sent))
    undeliverable = worker.metrics.dead_letter_undeliverable.labels(error="MSG_SIZE_TOO_LARGE")
    assert undeliverable._value.get() == 1
    assert worker.metrics.retries.labels(stage="dead_letter")._value.get() == 0


def test_a_record_above_the_consumers_receive_limit_is_dead_lettered_by_metadata_and_skipped(
    make_settings: Any,
    names: Any,
    produce: Any,
    committed: Any,
    read_topic: Any,
) -> None:
    """A 300 KB record under a 100 KB receive limit: its metadata to the DLQ, the partition on.

    librdkafka refuses the whole fetch response, for ever; the worker notices the
    refusal, finds the partition and offset by fetching each partition alone,
    dead-letters where the record is and how large its response was, and reads
    past it. The clicks after it, on its partition and another, are all learned.
    """
    limit = 100_000
    worker = build_worker(make_settings(kafka_receive_message_max_bytes=limit))
    first = produce(names.topic, click_messages(click_stream(0, 100)), partition=0)
    try:
        assert worker.run_until(lambda w: w.totals.events >= 100, timeout_s=120)
        big_at = produce(
            names.topic, [(b"u0", _event_of(300_000))], partition=0, config=BIG_PRODUCER
        )
        after = [
            produce(names.topic, click_messages(click_stream(100, 100)), partition=0),
            produce(names.topic, click_messages(click_stream(200, 100)), partition=1),
        ]
        assert worker.run_until(lambda w: w.totals.events >= 300, timeout_s=120)
        for _ in range(3):  # still turning, nothing read twice
            worker.step()
    finally:
        worker.close()
    assert worker.totals.events == 300
    ends = _merged(first.ends, big_at.ends, *(sent.ends for sent in after))
    assert committed(names.group, names.topic) == {0: ends[0], 1: ends[1], 2: 0}
    [letter] = read_topic(names.dlq_topic, 1)
    headers = dict(letter.headers())
    assert headers["recstream.reason"] == b"too_large_to_fetch"
    assert headers["recstream.source"] == f"{names.topic}/0/100".encode()
    meta = json.loads(letter.value())
    assert (meta["topic"], meta["partition"], meta["offset"]) == (names.topic, 0, 100)
    assert meta["size"] > 300_000
    assert meta["limit"] == limit
    skipped = worker.metrics.dead_lettered.labels(reason="too_large_to_fetch")._value.get()
    assert skipped == 1
