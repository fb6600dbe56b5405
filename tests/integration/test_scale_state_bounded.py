"""Scale-out state stays bounded by live users: an evicted user is deleted from the state topic."""

from __future__ import annotations

from typing import Any

import msgpack

from stream.sync_topics import PartitionReader
from worker.app import build_worker
from worker.scaleout.codec import decode_partition


def _clicks(users: list[str], per_user: int, ts: float) -> list[tuple[bytes, bytes]]:
    return [
        (user.encode(), msgpack.packb({"user": user, "item": f"i{n}", "ts": ts + n}))
        for n in range(per_user)
        for user in users
    ]


def test_an_evicted_user_gets_a_tombstone_and_no_hand_over_restores_it(
    make_settings: Any, names: Any, produce: Any, kafka_server: Any
) -> None:
    """Past RECSTREAM_MAX_USERS the oldest users are evicted: the state topic forgets them.

    What a new owner restores from the state topic (`decode_partition`, as a
    hand-over reads it) is then exactly the users the worker still holds.
    """
    dim = 16
    settings = make_settings(
        scale_out=True,
        kafka_topic_partitions=1,
        max_users=20,
        state_flush_s=0.2,
        item_sync_s=0.2,
        dim=dim,
    )
    worker = build_worker(settings)
    old = [f"old{n}" for n in range(10)]
    new = [f"new{n}" for n in range(30)]
    try:
        produce(names.topic, _clicks(old, 3, 1_700_000_000.0), partition=0)
        assert worker.run_until(
            lambda w: w.totals.events >= 30 and w.scale is not None and w.scale.unflushed == 0, 120
        )
        produce(names.topic, _clicks(new, 2, 1_700_010_000.0), partition=0)
        assert worker.run_until(
            lambda w: w.totals.events >= 90 and w.scale is not None and w.scale.unflushed == 0, 120
        )
        live = {user for user in worker.learner.users.ids() if user is not None}
        tombstones = worker.metrics.state_tombstones._value.get()
    finally:
        worker.close()
    assert len(live) <= 20
    evicted = set(old) - live
    assert evicted, live  # the cap pushed old users out
    reader = PartitionReader({"bootstrap.servers": kafka_server.bootstrap})
    try:
        records = reader.read(f"{names.topic}.state", 0)
    finally:
        reader.close()
    deleted = {key.decode() for key, value in records if key is not None and value is None}
    assert evicted <= deleted
    assert tombstones >= len(evicted)
    restored = decode_partition(records, dim + 1).users.ids
    assert set(restored) == live
