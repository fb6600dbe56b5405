"""A new scale-out worker's catch-up reads the item snapshot, not the feed's whole history."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
import torch

from models.device import resolve_device
from worker.app import build_engine, build_worker
from worker.scaleout.build import build_scale

ITEMS = 30
USERS = 20


def _round(n: int) -> list[tuple[bytes, bytes]]:
    """One round of clicks: every user clicks two items, in time order."""
    out = []
    for k in range(2):
        for user in range(USERS):
            item = f"i{(user * 7 + n * 3 + k) % ITEMS}"
            value = {"user": f"u{user}", "item": item, "ts": 1_700_000_000.0 + 100 * n + k}
            out.append((f"u{user}".encode(), msgpack.packb(value)))
    return out


@pytest.mark.parametrize("rounds", [3, 40])
def test_catch_up_reads_the_catalogue_whatever_the_feed_history(
    make_settings: Any, names: Any, produce: Any, rounds: int
) -> None:
    """After N item-sync rounds and a snapshot, a new worker reads O(items) records, same state.

    The feed holds at least N deltas; the new worker reads the snapshot (one
    record per item) and what the feed holds after it, and then has the
    writer's item rows (the bias up to one constant: the prior's reference) and
    transition rings.
    """
    settings = make_settings(
        scale_out=True,
        kafka_topic_partitions=1,
        item_sync_s=0.05,
        state_flush_s=1,
        item_snapshot_s=0.5,
    )
    writer = build_worker(settings)
    scale = writer.scale
    assert scale is not None
    try:
        sent = 0
        for n in range(rounds):  # each round: clicks, learned, then their delta on the feed
            clicks = _round(n)
            produce(names.topic, clicks, partition=0)
            sent += len(clicks)
            seq = scale._seq
            assert writer.run_until(
                lambda w, sent=sent, seq=seq: w.totals.events >= sent and scale._seq > seq,
                60,
            )
        history = scale._seq
        before = scale.snapshots_written
        assert writer.run_until(lambda _w: scale.snapshots_written > before, 60)
        engine = build_engine(settings, resolve_device("cpu"))
        joiner = build_scale(settings, engine)
        try:
            read = joiner.catch_up_records
        finally:
            joiner.close()
    finally:
        writer.close()
    items = len(writer.learner.items)
    print(f"{rounds} rounds: {history} feed records, catch-up read {read} for {items} items")  # noqa: T201
    assert history >= rounds
    assert read <= items + 2  # the snapshot, and at most a record or two after it
    # the joiner holds what the writer agreed on
    ids = [i for i in writer.learner.items.ids() if i is not None]
    mine = writer.learner.item_table.weight[torch.from_numpy(writer.learner.items.lookup(ids))]
    theirs = engine.learner.item_table.weight[torch.from_numpy(engine.learner.items.lookup(ids))]
    assert torch.allclose(mine[:, :-1], theirs[:, :-1], atol=1e-5)
    shift = mine[:, -1] - theirs[:, -1]
    assert torch.allclose(shift, shift[0].expand_as(shift), atol=1e-3)
    ring = writer.learner.transition
    if ring is not None:
        assert engine.learner.transition is not None
        for item in ids[:10]:
            a = writer.learner.items.lookup([item])[0]
            b = engine.learner.items.lookup([item])[0]
            succ_a = ring.table.successors[a][ring.table.successors[a] >= 0]
            succ_b = engine.learner.transition.table.successors[b]
            succ_b = succ_b[succ_b >= 0]
            names_a = sorted(map(str, writer.learner.items.ids_of(succ_a.numpy().astype("int64"))))
            names_b = sorted(map(str, engine.learner.items.ids_of(succ_b.numpy().astype("int64"))))
            assert names_a == names_b, item
