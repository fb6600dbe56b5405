"""The eval's `--through-kafka` path against the in-process one, on the real broker and Redis."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from worker.settings import Settings, with_values
from worker.testing.embedded import EmbeddedKafka, EmbeddedRedis
from worker.tools.evaluate.compare import in_process_pair, through_kafka, wire_settings
from worker.tools.evaluate.data import drifting
from worker.tools.evaluate.options import EvalOptions


@pytest.mark.timeout(240)
def test_through_kafka_gives_the_in_process_numbers(
    kafka_server: EmbeddedKafka, redis_server: EmbeddedRedis
) -> None:
    """Lists read back from Redis score what the in-process published lists score."""
    stream = drifting(3_000, users=120, items=150, seed=5)
    options = EvalOptions(
        paths=[],
        settings=with_values(Settings(), dim=16, device="cpu", metrics_port=0),
        batch_size=200,
    )
    fresh, published = in_process_pair(stream, options)
    settings = wire_settings(
        with_values(options.settings, top_k=10),
        kafka_server.bootstrap,
        redis_server.url,
        uuid.uuid4().hex[:8],
        options.batch_size,
    )
    kafka = through_kafka(stream, settings, options)
    assert published.headline.events == kafka.headline.events > 1_000
    assert published.headline.hr > 0.05  # the model learned something to agree on
    for a, b in ((published, kafka), (fresh, kafka)):
        assert b.headline.hr == pytest.approx(a.headline.hr, abs=0.02)
        assert b.headline.ndcg == pytest.approx(a.headline.ndcg, abs=0.02)
        assert b.headline.mrr == pytest.approx(a.headline.mrr, abs=0.02)
    hr = np.array([w.hr for w in kafka.windows])
    assert np.allclose(hr, [w.hr for w in published.windows], atol=0.05)
