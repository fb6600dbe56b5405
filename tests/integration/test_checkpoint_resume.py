"""A restarted worker resumes from its checkpoint: the model it had, and the events after it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import torch

from worker.app import build_worker


def _clicks(start: int, count: int) -> list[tuple[bytes, bytes]]:
    out = []
    for n in range(start, start + count):
        user, item = f"u{n % 20}", f"i{(n * 7) % 90}"
        out.append((user.encode(), msgpack.packb({"user": user, "item": item, "ts": float(n)})))
    return out


def test_restart_restores_the_model_and_rereads_events_after_the_checkpoint(
    make_settings: Any, names: Any, produce: Any, committed: Any, tmp_path: Path
) -> None:
    """Events committed after the last checkpoint are re-read, and the learned state comes back."""
    settings = make_settings(checkpoint_dir=tmp_path, checkpoint_interval_s=1e9)
    first = build_worker(settings)
    produce(names.topic, _clicks(0, 600))
    assert first.run_until(lambda w: w.totals.messages >= 600, timeout_s=60)
    first.checkpoint()
    users_at_checkpoint = first.learner.users.ids()
    items_at_checkpoint = first.learner.item_vectors().clone()
    produce(names.topic, _clicks(600, 400))
    assert first.run_until(lambda w: w.totals.messages >= 1000, timeout_s=60)
    first.close()  # a crash after committing, before the next checkpoint
    assert sum(committed(names.group, names.topic).values()) == 1000

    second = build_worker(settings)
    assert second.learner.users.ids() == users_at_checkpoint
    assert second.learner.item_vectors().shape == items_at_checkpoint.shape
    try:
        assert second.run_until(lambda w: w.totals.messages >= 400, timeout_s=60)
        for _ in range(5):  # nothing older than the checkpoint comes back
            second.step()
    finally:
        second.close()
    assert second.totals.messages == 400
    assert sum(committed(names.group, names.topic).values()) == 1000


def _manifest_offsets(directory: Path) -> dict[int, int]:
    newest = max(directory.glob("ckpt-*.json"))
    return {p: o for _, p, o in json.loads(newest.read_text())["offsets"]}


def test_a_click_committed_after_a_checkpoint_survives_a_restart_that_never_read_its_partition(
    make_settings: Any,
    names: Any,
    produce: Any,
    committed: Any,
    group_stable: Any,
    tmp_path: Path,
) -> None:
    """Checkpoint; a click on partition 1 committed; crash; checkpoint before re-reading it; crash.

    The third process must still learn the click: the second one's checkpoint
    carries the restored offset of partition 1 forward instead of dropping it.
    """
    settings = make_settings(
        checkpoint_dir=tmp_path, checkpoint_interval_s=1e9, kafka_topic_partitions=2
    )
    first = build_worker(settings)
    produce(names.topic, _clicks(0, 100), partition=0)
    produce(names.topic, _clicks(100, 100), partition=1)
    try:
        assert first.run_until(lambda w: w.totals.messages >= 200, timeout_s=60)
        first.checkpoint()
        click = msgpack.packb({"user": "clicker", "item": "the-item", "ts": 1000.0})
        produce(names.topic, [(b"clicker", click)], partition=1)
        assert first.run_until(lambda w: w.totals.messages >= 201, timeout_s=60)
    finally:
        first.close()  # killed: no checkpoint after the click
    assert committed(names.group, names.topic) == {0: 100, 1: 101}

    produce(names.topic, _clicks(200, 300), partition=0)  # a backlog on partition 0
    second = build_worker(settings)
    assert "clicker" not in second.learner.users
    second.checkpoint()  # due before partition 1 is read again
    # Its consumer joins in the background, without a poll (so nothing is read); leaving
    # while the broker still holds that join would wedge the group (`group_stable`).
    assert group_stable(names.group)
    second.close()  # killed
    assert _manifest_offsets(tmp_path) == {0: 100, 1: 100}

    third = build_worker(settings)
    try:
        assert third.run_until(lambda w: "clicker" in w.learner.users, timeout_s=60)
        assert third.run_until(lambda w: w.totals.messages >= 301, timeout_s=60)
    finally:
        third.close()
    row = third.learner.users.lookup(["clicker"])
    item = int(third.learner.items.lookup(["the-item"])[0])
    assert item in third.history.seen(torch.from_numpy(row)).tolist()[0]
    assert committed(names.group, names.topic) == {0: 400, 1: 101}
