"""Measure a partition's hand-over: N users flushed by one worker, restored by another.

`python -m worker.tools.handover_bench [--users 100000] [--clicks 3] [--bootstrap B]`
(without `--bootstrap`: an embedded Tansu). Worker A learns `clicks` clicks per
user on partition 0, then its revoke hand-over runs (write every user's
state, a marker, wait for the acknowledgements, drop them); worker B's assign
runs (read the partition to its end, restore every user). Both are timed as
the worker runs them (`ScaleOut.revoked`, `ScaleOut.start_at`).
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

import numpy as np
import torch

from stream.batch import DecodedBatch
from stream.kafka_admin import ensure_topics
from stream.sync_topics import FeedReader, PartitionReader, SyncProducer
from worker.app import build_engine
from worker.config.settings import Settings, with_values
from worker.engine.engine import Engine
from worker.scaleout.service import ScaleConfig, ScaleOut


def _scale(engine: Engine, bootstrap: str, config: ScaleConfig) -> ScaleOut:
    kafka = {"bootstrap.servers": bootstrap}
    return ScaleOut(
        config,
        engine,
        producer=SyncProducer(kafka),
        reader=PartitionReader(kafka),
        feed=FeedReader(kafka, config.items_topic),
    )


def measure(bootstrap: str, users: int, clicks: int, items: int = 10_000) -> dict[str, float]:
    """Hand-over figures for one partition of `users` users."""
    tag = uuid.uuid4().hex[:8]
    config = ScaleConfig(f"bench-{tag}", f"bench-{tag}.state", f"bench-{tag}.items", 1e9, 1e9)
    kafka = {"bootstrap.servers": bootstrap}
    ensure_topics(kafka, {config.topic: 1, config.state_topic: 1, config.items_topic: 1})
    settings = with_values(Settings(device="cpu"), dim=64, max_users=4 * users)
    a = build_engine(settings, torch.device("cpu"))
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    batch_size = 4096
    user_ids = [f"user-{n}" for n in range(users)]
    scale_a = _scale(a, bootstrap, config)
    scale_a.owned.add(0)
    for first in range(0, users * clicks, batch_size):
        n = min(batch_size, users * clicks - first)
        picked = [user_ids[(first + k) % users] for k in range(n)]
        chosen = [f"item-{i}" for i in rng.integers(0, items, n)]
        batch = DecodedBatch(users=picked, items=chosen, event_ts=[1.7e9] * n, weights=[1.0] * n)
        batch.partitions.extend([0] * n)
        learned = a.learn(picked, chosen, np.full(n, 1.7e9), np.ones(n, dtype=np.float32))
        scale_a.after_batch(batch, learned)
    learn_s = time.perf_counter() - start
    scale_a.learned_offsets = {(config.topic, 0): users * clicks}
    start = time.perf_counter()
    scale_a.revoked([(config.topic, 0)])
    flush_s = time.perf_counter() - start
    b = build_engine(settings, torch.device("cpu"))
    scale_b = _scale(b, bootstrap, config)
    start = time.perf_counter()
    starts = scale_b.start_at([(config.topic, 0)])
    restore_s = time.perf_counter() - start
    if len(b.learner.users) != users or starts[config.topic, 0] != users * clicks:
        msg = f"restored {len(b.learner.users)} of {users} users, start {starts}"
        raise RuntimeError(msg)
    for scale in (scale_a, scale_b):
        scale.close()
    return {
        "users": users,
        "clicks_per_user": clicks,
        "learn_s": round(learn_s, 2),
        "flush_s": round(flush_s, 2),
        "restore_s": round(restore_s, 2),
        "handover_s": round(flush_s + restore_s, 2),
    }


def main() -> None:
    """Print the figures as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--clicks", type=int, default=3)
    parser.add_argument("--bootstrap", default=None)
    args = parser.parse_args()
    server = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        from worker.testing.embedded import start_kafka

        server = start_kafka()
        bootstrap = server.bootstrap
    try:
        print(json.dumps(measure(bootstrap, args.users, args.clicks)))  # noqa: T201
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
