"""A restarted worker resumes from its checkpoint: the model it had, and the events after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack

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
