"""Transition pairs shared over the item feed: workers' rings agree once the pairs arrive."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from index.exact import ExactIndex
from models.history import SeenHistory
from models.learner import LearnerConfig, OnlineLearner
from models.rows import RowLimits, RowPolicy
from stream.batch import DecodedBatch
from worker.engine.engine import Engine
from worker.scaleout.codec import TransitionChunk, decode_feed, encode_transitions
from worker.scaleout.service import ScaleConfig, ScaleOut
from worker.scaleout.transitions import TransitionPairs, split_pairs

CPU = torch.device("cpu")


def _engine(transition_slots: int = 256) -> Engine:
    config = LearnerConfig(dim=8, negatives=4, transition_slots=transition_slots)
    learner = OnlineLearner(config, CPU, SeenHistory(32, CPU))
    limits = RowLimits(max_rows=1 << 20)
    rows = RowPolicy.over(learner.users, learner.items, limits, limits)
    return Engine(learner, ExactIndex(), 5, rows)


class _Producer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, topic: str, _key: bytes, value: bytes, _partition: int | None = None) -> None:
        if topic == "clicks.items":
            self.sent.append(value)

    def flush(self, timeout_s: float = 30.0) -> None:
        pass


class _Feed:
    def __init__(self) -> None:
        self.values: list[bytes] = []

    def poll(self, _max_records: int, _timeout_s: float = 0.0) -> list[bytes]:
        out, self.values = self.values, []
        return out


def _scale(engine: Engine) -> tuple[ScaleOut, _Producer, _Feed]:
    producer, feed = _Producer(), _Feed()
    config = ScaleConfig("clicks", "clicks.state", "clicks.items", item_sync_s=1e-9)
    scale = ScaleOut(config, engine, producer=producer, reader=None, feed=feed)  # type: ignore[arg-type]
    return scale, producer, feed


def _feed(engine: Engine, scale: ScaleOut, clicks: list[tuple[str, str]]) -> None:
    batch = DecodedBatch(
        users=[u for u, _ in clicks],
        items=[i for _, i in clicks],
        event_ts=[1000.0] * len(clicks),
        weights=[1.0] * len(clicks),
    )
    batch.partitions.extend([0] * len(clicks))
    n = len(clicks)
    learned = engine.learn(batch.users, batch.items, np.full(n, 1000.0), np.ones(n, np.float32))
    scale.after_batch(batch, learned)
    engine.train_ranker()  # as the loop does, beside the batch's write


def _successors(engine: Engine, item: str) -> Counter[tuple[str, float]]:
    """The ring of `item` as a multiset of (successor id, weight): ring order left out."""
    learner = engine.learner
    assert learner.transition is not None
    row = learner.items.row(item)
    table = learner.transition.table
    held = table.successors[row] >= 0
    rows = table.successors[row][held].long().numpy()
    weights = table.weights[row][held].tolist()
    ids = learner.items.ids_of(rows)
    return Counter((str(i), round(w, 6)) for i, w in zip(ids, weights, strict=True))


def _shares(engine: Engine, item: str) -> dict[str, float]:
    """The item's co-visit neighbours and their weights (fed the same pairs as the rings)."""
    learner = engine.learner
    assert learner.transition is not None
    rows, share = learner.transition.covisit.scores(torch.tensor([learner.items.row(item)]))
    out: dict[str, float] = {}
    for r, s in zip(rows[0].tolist(), share[0].tolist(), strict=True):
        if r >= 0:
            key = str(learner.items.ids_of(np.array([r]))[0])
            out[key] = out.get(key, 0.0) + s
    return out


def test_two_workers_rings_agree_after_exchanging_pairs_and_redelivery_changes_nothing() -> None:
    """Each worker's users' pairs reach the other: same successors and shares per item."""
    a, b = _engine(), _engine()
    scale_a, out_a, feed_a = _scale(a)
    scale_b, out_b, feed_b = _scale(b)
    b.admit_items(["z", "c", "b"])  # other rows for the same ids than on a
    _feed(a, scale_a, [("u1", "a"), ("u1", "b"), ("u1", "c"), ("u3", "b"), ("u3", "a")])
    _feed(b, scale_b, [("u2", "a"), ("u2", "c"), ("u2", "d")])
    _feed(b, scale_b, [("u2", "a"), ("u4", "c"), ("u4", "b")])
    scale_a.tick()
    scale_b.tick()
    assert out_a.sent
    assert out_b.sent
    feed_a.values, feed_b.values = list(out_b.sent), list(out_a.sent)
    scale_a.tick()
    scale_b.tick()
    for item in ("a", "b", "c", "d"):
        assert _successors(a, item) == _successors(b, item)
        shares_a, shares_b = _shares(a, item), _shares(b, item)
        assert shares_a.keys() == shares_b.keys()
        for key, share in shares_a.items():
            assert abs(share - shares_b[key]) < 1e-4  # decay by pair count: order shifts bits
    # each ring holds both workers' pairs: a's u1 (a -> b) and b's u2 (a -> c, a -> d)
    assert {s for s, _ in _successors(a, "a")} == {"b", "c", "d"}
    ring = _successors(b, "a")
    feed_b.values = list(out_a.sent) + list(out_a.sent)  # re-delivered
    scale_b.tick()
    assert _successors(b, "a") == ring


def test_without_scale_out_nothing_is_kept_and_without_transitions_nothing_is_sent() -> None:
    """The learner hands its pairs to no one until scale-out watches; no term, no records."""
    plain = _engine()
    plain.learn(["u", "u"], ["a", "b"], np.full(2, 1.0), np.ones(2, np.float32))
    assert plain.learner.transition is not None
    assert plain.learner.transition._sinks == []
    off = _engine(transition_slots=0)
    scale, out, _ = _scale(off)
    assert scale.transitions is None
    _feed(off, scale, [("u", "a"), ("u", "b")])
    scale.tick()
    assert all(not isinstance(decode_feed(v), TransitionChunk) for v in out.sent)


def test_pairs_split_into_bounded_records_that_decode_alike() -> None:
    """A large take is cut into records of at most the chunk size, each with its own ids."""
    ids = [f"i{n}" for n in range(50)]
    rng = np.random.default_rng(0)
    before = rng.integers(0, 50, 1000).astype(np.int32)
    after = rng.integers(0, 50, 1000).astype(np.int32)
    weight = rng.random(1000).astype(np.float32)
    pieces = split_pairs(TransitionPairs(ids, before, after, weight), 300)
    assert [len(p.weight) for p in pieces] == [300, 300, 300, 100]
    got = []
    for n, piece in enumerate(pieces):
        chunk = decode_feed(encode_transitions(TransitionChunk("o", n + 1, 0.0, piece)))
        assert isinstance(chunk, TransitionChunk)
        p = chunk.pairs
        got += [
            (p.ids[x], p.ids[y], w) for x, y, w in zip(p.before, p.after, p.weight, strict=True)
        ]
    want = [(ids[x], ids[y], w) for x, y, w in zip(before, after, weight, strict=True)]
    assert got == want


def test_feed_records_of_pairs_stay_under_half_a_megabyte_with_the_longest_ids() -> None:
    """Many pairs of 128-byte ids go out in several records, each under the record budget."""
    engine = _engine()
    scale, out, _ = _scale(engine)
    item = [("x" * 124) + f"{n:04d}" for n in range(600)]
    clicks = [(f"u{n % 20}", item[(7 * n) % 600]) for n in range(2000)]
    _feed(engine, scale, clicks)
    scale.tick()
    records = [v for v in out.sent if isinstance(decode_feed(v), TransitionChunk)]
    pairs = sum(len(decode_feed(v).pairs.weight) for v in records)  # type: ignore[union-attr]
    assert len(records) > 1
    assert pairs > 20_000
    assert max(len(v) for v in records) < 512_000


def test_rankers_ride_the_item_feed_and_are_averaged() -> None:
    """Each worker sends its ranker and both shares' sums; the other averages them in, exactly."""
    from worker.scaleout.codec import RankerChunk

    a, b = _engine(), _engine()
    scale_a, out_a, _ = _scale(a)
    _, _, feed_b = _scale(b)
    scale_b = _scale_of(b, feed_b)
    _feed(a, scale_a, [("u1", "a"), ("u2", "b")])
    _feed(a, scale_a, [("u1", "c"), ("u2", "a"), ("u3", "b")])  # a's ranker learns
    a.stages.taste.responsible.fill_(30.0)
    a.stages.taste.labels.fill_(100.0)
    b.stages.taste.responsible.fill_(10.0)
    b.stages.taste.labels.fill_(300.0)
    a.stages.idle_share.hits.fill_(8.0)
    a.stages.idle_share.labels.fill_(40.0)
    scale_a.tick()
    chunks = [decode_feed(v) for v in out_a.sent]
    sent = [c for c in chunks if isinstance(c, RankerChunk)]
    assert len(sent) == 1
    theirs = a.stages.ranker.linear.detach().clone()
    mine = b.stages.ranker.linear.detach().clone()
    assert not torch.equal(theirs, mine)  # a learned: the average means something
    feed_b.values = list(out_a.sent)
    scale_b.tick()
    torch.testing.assert_close(b.stages.ranker.linear.detach(), (theirs + mine) / 2)
    assert float(b.stages.taste.responsible) == pytest.approx(20.0)
    assert float(b.stages.taste.labels) == pytest.approx(200.0)
    assert b.stages.idle_share.hits.tolist() == pytest.approx([4.0] * 10)
    assert float(b.stages.idle_share.labels) == pytest.approx(20.0)


def _scale_of(engine: Engine, feed: _Feed) -> ScaleOut:
    config = ScaleConfig("clicks", "clicks.state", "clicks.items", item_sync_s=1e-9)
    return ScaleOut(config, engine, producer=_Producer(), reader=None, feed=feed)  # type: ignore[arg-type]
