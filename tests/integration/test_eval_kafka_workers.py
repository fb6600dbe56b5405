"""`--through-kafka --workers N`: N scale-out workers score as one on the same stream.

With the defaults, transitions on: scale-out shares user state, item rows,
popularity and the transition pairs (docs/scaling.md). Before the pairs were
shared, each worker saw 1/N of them and 3 workers scored 0.16-0.17 against 0.20.
"""

from __future__ import annotations

import uuid

import pytest

from worker.settings import Settings, with_values
from worker.testing.embedded import EmbeddedKafka, EmbeddedRedis
from worker.tools.evaluate.compare import through_kafka, wire_settings
from worker.tools.evaluate.data import drifting
from worker.tools.evaluate.options import EvalOptions
from worker.tools.evaluate.peers import MostPopular
from worker.tools.evaluate.protocol import evaluate

WORKERS = 3
# HR@10 over 1,824 headline events has a sd of ~0.008 per run; 0.03 is ~2.5 sd of a difference.
TOLERANCE = 0.03


@pytest.mark.timeout(420)
def test_three_workers_score_as_one(
    kafka_server: EmbeddedKafka, redis_server: EmbeddedRedis
) -> None:
    """HR@10 of 3 scale-out workers is within TOLERANCE of one worker's."""
    stream = drifting(3_000, users=120, items=150, seed=5)
    options = EvalOptions(
        paths=[],
        settings=with_values(Settings(), dim=16, device="cpu", metrics_port=0, top_k=10),
        batch_size=200,
    )
    outcomes = []
    for workers in (1, WORKERS):
        settings = wire_settings(
            with_values(options.settings, item_sync_s=0.2),
            kafka_server.bootstrap,
            redis_server.url,
            uuid.uuid4().hex[:8],
            options.batch_size,
            workers,
        )
        outcomes.append(through_kafka(stream, settings, options, workers))
    one, many = outcomes
    popular = evaluate(stream, MostPopular(stream.n_items), options.batch_size)
    print(  # noqa: T201  (pytest -s shows the figures)
        f"HR@10: 1 worker {one.headline.hr:.4f}, {WORKERS} workers {many.headline.hr:.4f}, "
        f"most-popular {popular.headline.hr:.4f}"
    )
    assert one.headline.events == many.headline.events > 1_000
    assert many.headline.hr == pytest.approx(one.headline.hr, abs=TOLERANCE)
    assert min(one.headline.hr, many.headline.hr) > 0.8 * popular.headline.hr > 0.05
