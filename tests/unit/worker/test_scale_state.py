"""Scale-out state on the model side: seeded items, item deltas that converge, user hand-over."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
import torch

import worker.scaleout.metrics
from index.exact import ExactIndex
from models.history import SeenHistory
from models.learner import LearnerConfig, OnlineLearner
from models.rows import RowLimits, RowPolicy
from models.seeded import seeded_normal
from stream.batch import DecodedBatch
from worker.engine.engine import Engine
from worker.observability.metrics import WorkerMetrics
from worker.scaleout.codec import (
    DeltaChunk,
    decode_delta,
    decode_partition,
    encode_delta,
    encode_users,
    split_delta,
)
from worker.scaleout.handover import drop_users, export_users, import_users
from worker.scaleout.item_deltas import ItemSync
from worker.scaleout.ledger import UserLedger
from worker.scaleout.service import ScaleConfig, ScaleOut

CPU = torch.device("cpu")


def _engine(seed: int = 0) -> Engine:
    learner = OnlineLearner(LearnerConfig(dim=8, negatives=4, seed=seed), CPU, SeenHistory(32, CPU))
    limits = RowLimits(max_rows=1 << 20)
    rows = RowPolicy.over(learner.users, learner.items, limits, limits)
    return Engine(learner, ExactIndex(), 5, rows)


def _learn(engine: Engine, clicks: list[tuple[str, str]], ts: float = 1000.0) -> torch.Tensor:
    users, items = [u for u, _ in clicks], [i for _, i in clicks]
    learned = engine.learn(
        users, items, np.full(len(clicks), ts), np.ones(len(clicks), dtype=np.float32)
    )
    assert learned.changed_items is not None
    return learned.changed_items


def test_seeded_rows_depend_on_the_id_alone() -> None:
    """The same id gets the same row in any order and batch; different ids differ."""
    a = seeded_normal(["x", "y", "z"], 9, salt=1, seed=3)
    b = seeded_normal(["z", "x"], 9, salt=1, seed=3)
    assert np.array_equal(a[0], b[1])
    assert np.array_equal(a[2], b[0])
    assert not np.array_equal(a[0], a[1])
    assert (
        abs(float(seeded_normal([str(n) for n in range(2000)], 8, salt=1, seed=0).std()) - 1) < 0.05
    )


def test_items_start_alike_whatever_order_they_are_first_seen() -> None:
    """Two learners that meet the same items in different orders start them at the same rows."""
    one, two = _engine(), _engine()
    one.admit_items(["p", "q"])
    two.admit_items(["q", "p"])
    for table in ("item_table", "context_table"):
        w1, w2 = getattr(one.learner, table).weight, getattr(two.learner, table).weight
        for item in ("p", "q"):
            assert torch.equal(w1[one.learner.items.row(item)], w2[two.learner.items.row(item)])


def _exchange(engines: list[Engine], syncs: list[ItemSync]) -> None:
    deltas = [sync.take() for sync in syncs]
    for n, (engine, sync) in enumerate(zip(engines, syncs, strict=True)):
        for m, delta in enumerate(deltas):
            if m == n:
                continue
            chunk = decode_delta(encode_delta(DeltaChunk(str(m), 1, 0.0, 0.0, delta)))
            for piece in split_delta(chunk.delta, 3):
                rows = engine.admit_items(piece.ids)
                clicks = engine.admit_items(piece.click_ids)
                sync.apply(piece, rows, clicks)


def test_item_tables_converge_once_every_delta_is_folded_in() -> None:
    """Workers learning disjoint users hold the same item rows (by id) after a sync."""
    engines = [_engine(), _engine()]
    syncs = [ItemSync(e.learner) for e in engines]
    rng = np.random.default_rng(0)
    for step in range(5):
        for n, (engine, sync) in enumerate(zip(engines, syncs, strict=True)):
            clicks = [(f"w{n}u{rng.integers(5)}", f"i{rng.integers(12)}") for _ in range(8)]
            changed = _learn(engine, clicks, ts=1000.0 + step)
            sync.mark(changed, [i for _, i in clicks], [1.0] * len(clicks))
        _exchange(engines, syncs)
    items = sorted(i for i in engines[0].learner.items.ids() if i is not None)
    assert items == sorted(i for i in engines[1].learner.items.ids() if i is not None)
    rows = [torch.from_numpy(e.learner.items.lookup(items)) for e in engines]
    w = [e.learner.item_table.weight[r] for e, r in zip(engines, rows, strict=True)]
    # factors equal; the bias column equal up to one constant (each prior has its own reference)
    assert torch.allclose(w[0][:, :-1], w[1][:, :-1], atol=1e-5)
    shift = w[0][:, -1] - w[1][:, -1]
    assert torch.allclose(shift, shift[0].expand_as(shift), atol=1e-3)
    c = [e.learner.context_table.weight[r] for e, r in zip(engines, rows, strict=True)]
    assert torch.allclose(c[0], c[1], atol=1e-5)
    # the popularity prior counted every worker's clicks: the same ranking everywhere
    mass = [e.learner.prior.log_mass[r] for e, r in zip(engines, rows, strict=True)]
    assert torch.allclose(mass[0] - mass[0].max(), mass[1] - mass[1].max(), atol=1e-6)


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int | None]] = []

    def send(self, topic: str, key: bytes, value: bytes, partition: int | None = None) -> None:
        self.sent.append((topic, key, value, partition))

    def flush(self, timeout_s: float = 30.0) -> None:
        pass


class _Feed:
    def __init__(self) -> None:
        self.values: list[bytes] = []

    def poll(self, _max_records: int, _timeout_s: float = 0.0) -> list[bytes]:
        out, self.values = self.values, []
        return out


def _scale(
    engine: Engine, metrics: WorkerMetrics | None = None
) -> tuple[ScaleOut, _Producer, _Feed]:
    producer, feed = _Producer(), _Feed()
    config = ScaleConfig("clicks", "clicks.state", "clicks.items", item_sync_s=1e-9)
    scale = ScaleOut(config, engine, producer=producer, reader=None, feed=feed, metrics=metrics)  # type: ignore[arg-type]
    return scale, producer, feed


def _staleness_count(metrics: WorkerMetrics) -> float:
    count = metrics.registry.get_sample_value("recstream_item_sync_staleness_seconds_count")
    return count or 0.0


def test_a_redelivered_delta_changes_nothing() -> None:
    """A feed record seen twice (same origin and seq) is folded in once; own records never."""
    a, b = _engine(), _engine()
    scale_a, producer_a, _ = _scale(a)
    metrics = WorkerMetrics()
    scale_b, _, feed_b = _scale(b, metrics)
    batch = DecodedBatch(users=["u"], items=["hot"], event_ts=[1000.0], weights=[1.0])
    batch.partitions.append(0)
    learned = a.learn(batch.users, batch.items, np.array([1000.0]), np.ones(1, np.float32))
    scale_a.after_batch(batch, learned)
    scale_a.tick()
    records = [value for topic, _, value, _ in producer_a.sent if topic == "clicks.items"]
    assert records
    feed_b.values = records
    scale_b.tick()
    first_count = _staleness_count(metrics)
    row = b.learner.items.row("hot")
    once = b.learner.item_table.weight[row].clone()
    feed_b.values = records + records
    scale_b.tick()
    assert torch.equal(b.learner.item_table.weight[row], once)
    # the staleness histogram saw the first delivery, and nothing of the re-delivery
    assert _staleness_count(metrics) == first_count > 0
    assert torch.allclose(once[:-1], a.learner.item_table.weight[a.learner.items.row("hot")][:-1])
    # the cold-start list of b counts a's click
    assert b.cold_start().items[0] == "hot"


def test_the_staleness_kept_in_memory_is_a_bounded_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Folding goes on for as long as a worker runs: only the last folds' staleness stays."""
    monkeypatch.setattr(worker.scaleout.metrics, "STALENESS_WINDOW", 2)
    a, b = _engine(), _engine()
    scale_a, producer_a, _ = _scale(a)
    metrics = WorkerMetrics()
    scale_b, _, feed_b = _scale(b, metrics)
    for n in range(5):
        batch = DecodedBatch(users=["u"], items=[f"i{n}"], event_ts=[1000.0 + n], weights=[1.0])
        batch.partitions.append(0)
        learned = a.learn(batch.users, batch.items, np.array([1000.0 + n]), np.ones(1, np.float32))
        scale_a.after_batch(batch, learned)
        producer_a.sent.clear()
        scale_a.tick()
        feed_b.values = [value for topic, _, value, _ in producer_a.sent if topic == "clicks.items"]
        scale_b.tick()
    assert len(scale_b.staleness_s) == 2
    assert _staleness_count(metrics) == 5  # every fold is in the histogram


def test_users_hand_over_with_rows_and_their_one_ring() -> None:
    """A user's row and seen history (its newest slots the query's) move to another model by id."""
    old, new = _engine(), _engine()
    clicks = [("u1", "a"), ("u1", "b"), ("u2", "c"), ("u1", "c")]
    _learn(old, clicks)
    _learn(new, [("z", "c"), ("z", "x")])  # different item rows on the new owner
    rows = old.learner.users.lookup(["u1", "u2"])
    state = export_users(old.learner, old.rows.users, rows)
    decoded = decode_partition(
        [(k, v) for k, v in encode_users(state)], old.learner.config.dim + 1
    ).users
    user_rows = new.admit_users(decoded.ids)
    assert import_users(new.learner, new.rows.users, decoded, user_rows, new.admit_items) == 2
    for user in ("u1", "u2"):
        a, b = old.learner.users.row(user), new.learner.users.row(user)
        assert torch.equal(old.learner.user_table.weight[a], new.learner.user_table.weight[b])
        seen_old = old.learner.items.ids_of(old.history.seen(torch.tensor([a]))[0].numpy())
        seen_new = new.learner.items.ids_of(new.history.seen(torch.tensor([b]))[0].numpy())
        assert list(seen_old) == list(seen_new)
        latest_old = old.history.latest(torch.tensor([a]), 16)[0]
        latest_new = new.history.latest(torch.tensor([b]), 16)[0]
        assert list(old.learner.items.ids_of(latest_old[latest_old >= 0].numpy())) == list(
            new.learner.items.ids_of(latest_new[latest_new >= 0].numpy())
        )
        assert new.history.last_ts[b] == old.history.last_ts[a]
    # the handed-over user's list excludes what they clicked before the move
    ranked = new.rank(torch.tensor([new.learner.users.row("u1")]))
    listed = set(new.learner.items.ids_of(ranked.item_rows[0][ranked.item_rows[0] >= 0]))
    assert not listed & {"a", "b", "c"}
    drop_users(old.learner, rows)
    assert "u1" not in old.learner.users


@pytest.mark.parametrize("dim", [8])
def test_a_state_record_of_another_dimension_is_not_restored(dim: int) -> None:
    """Records whose row width differs (a changed RECSTREAM_DIM) are left out, not misread."""
    old = _engine()
    _learn(old, [("u1", "a")])
    state = export_users(old.learner, old.rows.users, old.learner.users.lookup(["u1"]))
    assert decode_partition(encode_users(state), dim + 2).users.ids == []
    assert decode_partition(encode_users(state), dim + 1).users.ids == ["u1"]


def test_a_state_record_that_still_carries_a_second_ring_decodes() -> None:
    """A record of an older worker, with the learner's own ring ("r", "rw") too, decodes as one."""
    old = _engine()
    _learn(old, [("u1", "a"), ("u1", "b")])
    state = export_users(old.learner, old.rows.users, old.learner.users.lookup(["u1"]))
    ((key, value),) = encode_users(state)
    older = msgpack.packb({**msgpack.unpackb(value), "r": ["b", "a"], "rw": 2})
    decoded = decode_partition([(key, older)], old.learner.config.dim + 1).users
    assert decoded.ids == ["u1"]
    assert decoded.seen == state.seen
    assert decoded.seen_written.tolist() == state.seen_written.tolist()


def test_scale_out_books_grow_by_the_row_caps() -> None:
    """The ledger of user rows and the item sync's base follow `models.growth`: never past a cap."""
    learner = OnlineLearner(LearnerConfig(dim=8, negatives=4), CPU, SeenHistory(8, CPU))
    rows = RowPolicy.over(
        learner.users, learner.items, RowLimits(max_rows=20), RowLimits(max_rows=30)
    )
    engine = Engine(learner, ExactIndex(), 5, rows)
    scale, _, _ = _scale(engine)
    users, items = [f"u{n}" for n in range(15)], [f"i{n}" for n in range(25)]
    clicks = [(users[n % 15], items[n]) for n in range(25)]
    batch = DecodedBatch(users=[u for u, _ in clicks], items=[i for _, i in clicks])
    batch.event_ts.extend([1000.0] * 25)
    batch.weights.extend([1.0] * 25)
    batch.partitions.extend([0] * 25)
    learned = engine.learn(batch.users, batch.items, np.full(25, 1000.0), np.ones(25, np.float32))
    scale.after_batch(batch, learned)
    assert scale.unflushed == 15
    assert scale.ownership.ledger._partition.size == 20  # not the 1,024 of a bare doubling
    assert scale.items._dirty.shape[0] == 30


def test_restored_users_left_without_a_row_are_tombstoned() -> None:
    """A user the caps refuse at restore is queued for deletion from the state topic.

    Else it stays live there for good, held by no worker (the scale soak saw 15,001
    live users under caps of 3 x 5,000).
    """
    learner = OnlineLearner(LearnerConfig(dim=8, negatives=4), CPU)
    ledger = UserLedger(learner.users, max_rows=4)
    ledger.owned.add(3)
    learner.users.rows_for(["kept"])
    ledger.refused(3, ["refused-a", "refused-b", "kept"])
    assert ledger.take_tombstones(3) == ["refused-a", "refused-b"]  # "kept" has a row now
    assert ledger.take_tombstones(3) == []


def test_records_still_carry_the_recent_ring_a_two_ring_worker_reads() -> None:
    """A wrapped seen ring gives the newest 16 clicks, oldest first, for a rolling upgrade."""
    from worker.scaleout.codec import TWO_RING_WIDTH, two_ring_recent

    length, written = 20, 23  # clicks c0..c22 in a ring of 20: slots hold c20, c21, c22, c3..c19
    clicks = [f"c{n}" for n in range(written)]
    seen: list[str | None] = [None] * length
    for n, item in enumerate(clicks):
        seen[n % length] = item
    recent, count = two_ring_recent(seen, written)
    assert recent == clicks[-TWO_RING_WIDTH:]
    assert count == TWO_RING_WIDTH
    assert two_ring_recent(["a", "b"], 2) == (["a", "b"], 2)  # not wrapped, fewer than 16
