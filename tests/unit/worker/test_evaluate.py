"""Unit tests for `worker.tools.evaluate`: the prequential protocol, the peers and the report."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from worker.testing.synthetic import generate
from worker.tools.evaluate.data import Stream, encode
from worker.tools.evaluate.peers import Isgd, IsgdConfig, MostPopular, RecentPopular
from worker.tools.evaluate.protocol import Outcome, Pairs, Scores, SeenItems, evaluate, top_k
from worker.tools.evaluate.report import (
    DatasetResult,
    ahead_line,
    checkpoint_lines,
    difference_line,
    first_window_ahead,
    markdown,
    ratio_to_best_peer,
)
from worker.tools.replay import Interactions


def _stream(pairs: list[tuple[str, str]]) -> Stream:
    users, items = [u for u, _ in pairs], [i for _, i in pairs]
    return encode("planted", Interactions(users, items, np.arange(len(pairs), dtype=np.float64)))


class FixedList:
    """The same list for everyone, whatever they saw: scores that can be worked out by hand."""

    name = "fixed"

    def __init__(self, stream: Stream, order: list[str]) -> None:
        """The list, as the stream's item codes."""
        self.codes = np.searchsorted(stream.item_ids, order).astype(np.int64)

    def recommend(self, users: np.ndarray, seen: SeenItems, k: int) -> np.ndarray:  # noqa: ARG002
        """The fixed list for every user."""
        out = np.full((users.size, k), -1, dtype=np.int64)
        out[:, : self.codes.size] = self.codes
        return out

    def learn(self, users: np.ndarray, items: np.ndarray, ts: npt.NDArray[np.float64]) -> None:
        """Learns nothing."""


PLANTED = [
    ("a", "i00"),  # a's first event: not counted
    ("a", "i03"),  # rank 3: hit
    ("b", "i15"),  # b's first event: not counted
    ("b", "i12"),  # not in the list: miss
    ("a", "i00"),  # a re-consumption: counted apart, not in the headline
    ("b", "i01"),  # rank 1: hit
]


@pytest.mark.parametrize("batch_size", [1, 2, 256])
def test_fixed_list_scores_match_the_hand_computed_values(batch_size: int) -> None:
    """HR, NDCG and MRR of a fixed list equal the values worked out by hand, at any batch size."""
    stream = _stream(PLANTED)
    method = FixedList(stream, ["i15", "i01", "i00", "i03"])
    outcome = evaluate(stream, method, batch_size, windows=2)
    assert outcome.headline.events == 3
    assert outcome.headline.hr == pytest.approx(2 / 3)
    assert outcome.headline.ndcg == pytest.approx((1 / math.log2(5) + 1 / math.log2(3)) / 3)
    assert outcome.headline.mrr == pytest.approx((1 / 4 + 1 / 2) / 3)
    assert outcome.reconsumed == 1
    assert outcome.reconsumed_hits == 1  # the fixed list holds i00; a real method excludes it
    assert outcome.coverage == pytest.approx(4 / 5)
    assert [w.events for w in outcome.windows] == [1, 2]


def test_stream_flags_first_events_and_reconsumptions() -> None:
    """Only a user's later events count, and a pair seen before is a re-consumption."""
    stream = _stream(PLANTED)
    assert stream.counted.tolist() == [False, True, False, True, True, True]
    assert stream.repeat.tolist() == [False, False, False, False, True, False]
    assert stream.headline.tolist() == [False, True, False, True, False, True]


def test_most_popular_scores_the_known_hit_rate_when_one_item_dominates() -> None:
    """Fifty users click their own item, then `hot`: every `hot` click but the first hits."""
    users = [f"u{n:02d}" for n in range(50)]
    pairs = [(u, f"x{u}") for u in users] + [(u, "hot") for u in users]
    stream = _stream(pairs)
    outcome = evaluate(stream, MostPopular(stream.n_items), 1)
    # The first `hot` has no count yet; later ones top every list (ties go to the lower id).
    assert outcome.headline.events == 50
    assert outcome.headline.hr == pytest.approx(49 / 50)
    assert outcome.headline.mrr == pytest.approx(49 / 50)


def test_popular_lists_leave_out_what_the_user_has_seen() -> None:
    """A user who clicked the top item gets the next ones; never-clicked items are not listed."""
    popular = MostPopular(4)
    popular.learn(np.array([0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 2]), np.zeros(5))
    seen = SeenItems(3)
    seen.add(np.array([0]), np.array([0]))
    lists = popular.recommend(np.array([0, 1]), seen, 3)
    assert lists.tolist() == [[1, 2, -1], [0, 1, 2]]


def test_recent_popular_forgets_events_older_than_its_window() -> None:
    """Counts cover only the last `window` events."""
    recent = RecentPopular(3, window=2)
    recent.learn(np.zeros(3, dtype=np.int64), np.array([0, 0, 1]), np.zeros(3))
    recent.learn(np.zeros(1, dtype=np.int64), np.array([2]), np.zeros(1))
    assert recent.counts.tolist() == [0.0, 1.0, 1.0]


def test_top_k_breaks_ties_to_the_lower_column_and_pads() -> None:
    """Equal scores go to the lower item; excluded cells and a short catalogue give -1."""
    scores = np.array([[1.0, 3.0, 3.0]])
    exclude = np.array([[False, False, True]])
    assert top_k(scores, exclude, 4).tolist() == [[1, 0, -1, -1]]
    assert top_k(np.array([[2.0, 2.0, 5.0]]), np.zeros((1, 3), bool), 2).tolist() == [[2, 0]]


@pytest.mark.parametrize("cols", [7, 300, 5_000])
def test_top_k_keeps_the_lowest_of_the_cells_tied_at_the_kth_score(cols: int) -> None:
    """Against a stable sort of every row: rows full of ties, `-inf`, NaN and excluded cells."""
    rng = np.random.default_rng(cols)
    scores = rng.integers(0, 4, (40, cols)).astype(np.float64)  # a few values: ties everywhere
    scores[rng.random(scores.shape) < 0.1] = -np.inf
    scores[rng.random(scores.shape) < 0.05] = np.nan  # a diverged peer's scores list nothing
    exclude = rng.random(scores.shape) < 0.2
    scores[0] = -np.inf  # a row with nothing to list
    scores[1, : cols - 1] = np.nan  # a row with one cell to list
    for k in (1, 3, 10):
        masked = np.where(exclude | np.isnan(scores), -np.inf, scores)
        expected = np.argsort(-masked, axis=1, kind="stable")[:, :k]
        expected[~np.isfinite(np.take_along_axis(masked, expected, axis=1))] = -1
        expected = np.pad(expected, ((0, 0), (0, k - expected.shape[1])), constant_values=-1)
        assert np.array_equal(top_k(scores, exclude, k), expected)


def test_isgd_update_follows_the_paper_formula() -> None:
    """One click moves A_u and B_i by lr * (err * other - reg * own), with err = 1 - A_u . B_i."""
    isgd = Isgd(1, 2, IsgdConfig(factors=2, learning_rate=0.1, regularization=0.5))
    isgd.user_vecs[0] = [1.0, 0.0]
    isgd.item_vecs[1] = [0.5, 0.5]
    isgd.learn(np.array([0]), np.array([1]), np.zeros(1))
    err = 1.0 - 0.5
    assert isgd.user_vecs[0].tolist() == pytest.approx([1 + 0.1 * (err * 0.5 - 0.5), 0.1 * 0.25])
    assert isgd.item_vecs[1].tolist() == pytest.approx([0.5 + 0.1 * (err - 0.25), 0.5 - 0.025])
    assert isgd.known_items.tolist() == [False, True]


def test_isgd_ranks_only_items_it_has_seen_and_the_user_has_not() -> None:
    """Unknown items and the user's own clicks never appear in ISGD's lists."""
    stream = _stream([("a", "p"), ("b", "q"), ("a", "r"), ("c", "s")])
    isgd = Isgd(stream.n_users, stream.n_items, IsgdConfig(seed=3))
    outcome = evaluate(stream, isgd, 1)
    assert outcome.headline.events == 1
    seen = SeenItems(stream.n_users)
    seen.add(stream.users[:1], stream.items[:1])
    lists = isgd.recommend(np.array([0]), seen, 10)
    assert set(lists[0][lists[0] >= 0].tolist()) == {1, 2, 3}


def test_als_falls_back_to_popular_then_ranks_a_users_own_block() -> None:
    """Before its first fit ALS lists by popularity; after it, a user's unseen block item leads."""
    pytest.importorskip("implicit")
    from worker.tools.evaluate.peers import AlsConfig, PeriodicAls

    # Two blocks: users 0-9 click items 0-4, users 10-19 click items 5-9 (the lower ids more).
    users, items = [], []
    for user in range(20):
        block = 0 if user < 10 else 5
        for item in range(block, block + 5 - (user % 2)):
            users.append(user)
            items.append(item)
    als = PeriodicAls(21, 10, AlsConfig(every=len(users), factors=4, iterations=20, threads=1))
    seen = SeenItems(21)
    before = als.recommend(np.array([0]), seen, 3)
    assert (before == -1).all()  # nothing counted yet: no popular list either
    als.learn(np.array(users), np.array(items), np.zeros(len(users)))
    seen.add(np.array(users), np.array(items))
    assert als.fits == 1
    lists = als.recommend(np.array([1, 11, 20]), seen, 3)
    assert lists[0][0] == 4  # user 1 (odd) has not clicked item 4 of its block
    assert lists[1][0] == 9
    popular = MostPopular(10)
    popular.learn(np.array(users), np.array(items), np.zeros(len(users)))
    # User 20 is not in the fit: the popular list.
    assert lists[2].tolist() == popular.recommend(np.array([20]), seen, 3)[0].tolist()


def test_eval_streams_name_each_synthetic_kind() -> None:
    """`synthetic` builds the genre and the cluster stream under their names, and no other."""
    from worker.tools.evaluate.data import synthetic
    from worker.tools.evaluate.names import SYNTHETIC

    assert [synthetic(kind, 500).name for kind in SYNTHETIC] == [
        "synthetic-genres-500",
        "synthetic-clusters-500",
    ]
    with pytest.raises(ValueError, match="spirals"):
        synthetic("spirals", 500)


def test_drifting_stream_changes_tastes_at_the_midpoint_only() -> None:
    """Before the drift users click the undrifted stream's genres; after it, their new ones."""
    plain = generate(20_000, users=50, items=200, seed=3)
    drift = generate(20_000, users=50, items=200, seed=3, drift_at=0.5)
    assert drift.drift_index == 10_000
    assert np.array_equal(plain.users, drift.users)
    genre = drift.item_genre  # same seed: same catalogue
    assert np.array_equal(genre[plain.items[:10_000]], genre[drift.items[:10_000]])
    assert drift.user_taste_after is not None
    assert not np.array_equal(drift.user_taste_after, drift.user_taste)
    after = drift.item_genre[drift.items[10_000:]]
    user = int(np.bincount(drift.users).argmax())
    mine = after[drift.users[10_000:] == user]
    favourites = set(np.argsort(-drift.user_taste_after[user])[:2].tolist())
    assert np.isin(mine, list(favourites)).mean() > 0.5


def test_report_has_a_row_per_method_and_the_ratio() -> None:
    """The page lists every method with its numbers and recstream's ratio to the best peer."""
    stream = _stream(PLANTED)
    fixed = evaluate(stream, FixedList(stream, ["i15", "i01", "i00", "i03"]), 2)
    other = evaluate(stream, FixedList(stream, ["i01"]), 2)
    fixed.method = "recstream"
    result = DatasetResult("planted", 6, 2, 5, 3, [fixed, other])
    page = markdown([result], ["# title"], Path("docs"))
    assert "| recstream | 0.6667 | 0.3539 |" in page
    assert "| fixed | 0.3333 |" in page
    assert ratio_to_best_peer(result) == pytest.approx(2.0)
    assert "re-consumed" in page
    # hits (T, F, T) against (F, F, T) for users (a, b, b): +1/3, ± 4/9 (tests/.../test_paired.py)
    result = DatasetResult.of(stream, [fixed, other], "planted")
    assert "next click +0.3333 ± 0.4444 (fixed)" in difference_line(result)
    assert difference_line(DatasetResult("planted", 6, 2, 5, 3, [fixed])) == ""  # no peer


def test_the_long_horizon_keeps_each_pair_its_checkpoint_user_and_hit() -> None:
    """One checkpoint half-way: b clicks i12 and i01 later, a nothing new; i01 is listed."""
    stream = _stream(PLANTED)
    outcome = evaluate(stream, FixedList(stream, ["i15", "i01", "i00", "i03"]), 1, checkpoints=1)
    b = int(np.searchsorted(stream.user_ids, "b"))
    assert outcome.pairs.at.tolist() == [3]
    assert outcome.pairs.users.tolist() == [b]
    assert outcome.pairs.hits.tolist() == [True]
    assert outcome.long_horizon == 1.0
    assert outcome.hits.tolist() == [True, False, True]  # the headline's events, in order


def _horizon(method: str, hits: list[bool]) -> Outcome:
    pairs = Pairs(np.array([10, 10, 20, 20]), np.array([0, 1, 0, 1]), np.array(hits))
    outcome = Outcome(method, Scores(40, 0.1, 0.05, 0.03), 0, 0, 1.0, 1.0, 40, pairs=pairs)
    outcome.long_horizon = float(np.mean(hits))
    return outcome


def test_the_long_horizon_is_shown_checkpoint_by_checkpoint_against_the_best_peer() -> None:
    """Each checkpoint's rate beside the peer best on that horizon's, and the pairs counted."""
    ours = _horizon("recstream", [True, False, True, True])
    best, worse = _horizon("a", [True, True, False, False]), _horizon("b", [False] * 4)
    lines = checkpoint_lines(DatasetResult("s", 40, 2, 4, 40, [ours, worse, best]))
    assert "| at | 25% | 50% |" in lines
    assert "| recstream | 0.500 | 1.000 |" in lines
    assert "| a | 1.000 | 0.000 |" in lines
    assert "| user-checkpoint pairs | 2 | 2 |" in lines
    assert not any(line.startswith("| b |") for line in lines)
    assert checkpoint_lines(DatasetResult("s", 40, 2, 4, 40, [ours])) == []  # no peer


def _windowed(method: str, hrs: list[float]) -> Outcome:
    windows = [Scores(0 if math.isnan(h) else 10, h, h / 2, h / 3) for h in hrs]
    return Outcome(method, Scores(40, 0.1, 0.05, 0.03), 0, 0, 1.0, 1.0, 40, windows)


def _windowed_result(*outcomes: Outcome) -> DatasetResult:
    return DatasetResult("windows", 40, 4, 4, 40, list(outcomes))


def test_first_window_ahead_is_where_recstream_leads_every_peer_for_good() -> None:
    """The lead must hold in that window and every later one; a tie counts as ahead."""
    peers = (_windowed("a", [0.2, 0.2, 0.25, 0.4]), _windowed("b", [0.0, 0.1, 0.1, 0.5]))
    ours = _windowed("recstream", [0.3, 0.3, 0.2, 0.5])
    published = _windowed("recstream (published lists)", [0.9, 0.9, 0.9, 0.9])  # not a peer
    result = _windowed_result(ours, published, *peers)
    assert first_window_ahead(result) == 3  # behind a in window 2, tied with b in window 3
    assert "from window 4 of 4" in ahead_line(result)
    assert "from 75% of the stream" in ahead_line(result)
    leading = _windowed_result(_windowed("recstream", [0.3, 0.3, 0.3, 0.6]), *peers)
    assert first_window_ahead(leading) == 0


def test_first_window_ahead_is_none_when_behind_at_the_end() -> None:
    """Behind any peer in the last window: no window from which recstream stays ahead."""
    result = _windowed_result(
        _windowed("recstream", [0.5, 0.5, 0.5, 0.1]), _windowed("a", [0.2, 0.2, 0.2, 0.2])
    )
    assert first_window_ahead(result) is None
    assert "**never**" in ahead_line(result)
    alone = _windowed_result(_windowed("recstream", [0.5, 0.5, 0.5, 0.1]))
    assert first_window_ahead(alone) is None
    assert ahead_line(alone) == ""  # nothing to be ahead of: no line on the page


def test_windows_nobody_was_scored_in_neither_break_nor_make_a_lead() -> None:
    """A NaN window of recstream's or a peer's is skipped: the lead runs across it."""
    nan = float("nan")
    result = _windowed_result(
        _windowed("recstream", [0.1, 0.3, nan, 0.3]), _windowed("a", [0.2, 0.2, 0.2, nan])
    )
    assert first_window_ahead(result) == 1
    trailing = _windowed_result(
        _windowed("recstream", [0.3, 0.3, 0.3, nan]), _windowed("a", [0.2, 0.2, 0.2, 0.2])
    )
    assert first_window_ahead(trailing) == 0


def test_page_shows_where_recstream_leads_for_good() -> None:
    """Each dataset section carries the first-window-ahead line beside the ratio."""
    result = _windowed_result(
        _windowed("recstream", [0.1, 0.3, 0.3, 0.3]), _windowed("a", [0.2, 0.2, 0.2, 0.2])
    )
    page = markdown([result], ["# title"], Path("docs"))
    assert "recstream ahead of every peer for good: **from window 2 of 4**" in page


def test_users_without_a_list_get_each_methods_cold_start_list() -> None:
    """An unlearned user gets the Engine's cold-start list from recstream, popularity from ISGD."""
    import torch

    from index.exact import ExactIndex
    from models.history import SeenHistory
    from models.learner import LearnerConfig, OnlineLearner
    from worker.engine.engine import Engine
    from worker.tools.evaluate.engine_method import RecstreamMethod

    stream = _stream([("a", "x"), ("a", "y"), ("c", "y"), ("b", "z")])
    cpu = torch.device("cpu")
    learner = OnlineLearner(LearnerConfig(dim=4, negatives=8), cpu, SeenHistory(8, cpu))
    engine = Engine(learner, ExactIndex(), 3)
    method = RecstreamMethod(engine, stream)
    method.learn(stream.users[:3], stream.items[:3], stream.ts[:3])
    engine.learner.item_table.weight[: engine.learner.items.extent, -1] = torch.tensor([1.0, 2.0])
    unknown = stream.users[3:]
    lists = method.recommend(unknown, SeenItems(stream.n_users), 3)
    assert lists[0].tolist() == [int(np.searchsorted(stream.item_ids, "y")), 0, -1]
    isgd = Isgd(stream.n_users, stream.n_items, IsgdConfig(seed=1))
    isgd.learn(stream.users[:3], stream.items[:3], stream.ts[:3])
    popular = isgd.recommend(unknown, SeenItems(stream.n_users), 3)
    assert popular[0].tolist() == lists[0].tolist()  # y clicked twice, x once


def test_regenerating_the_page_keeps_the_hand_written_part() -> None:
    """Text from the keep-marker on survives a rewrite; a file without it is replaced whole."""
    from worker.tools.evaluate.report import KEPT_MARKER, keep_hand_written

    old = f"# old results\n\n{KEPT_MARKER}\n## What we tried\n- softmax: +40%\n"
    page = keep_hand_written("# new results\n", old)
    assert page.startswith("# new results\n")
    assert "old results" not in page
    assert page.endswith(f"{KEPT_MARKER}\n## What we tried\n- softmax: +40%\n")
    assert keep_hand_written("# new\n", "# no marker\n") == "# new\n"
    assert keep_hand_written("# new\n", None) == "# new\n"


def test_wire_settings_gives_several_workers_scale_out_on_twelve_partitions() -> None:
    """One worker keeps one partition; three get scale-out on 12 and a short idle wait."""
    from worker.config.settings import Settings
    from worker.tools.evaluate.compare import wire_settings

    one = wire_settings(Settings(), "127.0.0.1:9092", "redis://127.0.0.1:6379/0", "t", 32)
    three = wire_settings(Settings(), "127.0.0.1:9092", "redis://127.0.0.1:6379/0", "t", 32, 3)
    assert (one.kafka.topic_partitions, one.scale.scale_out) == (1, False)
    assert (three.kafka.topic_partitions, three.scale.scale_out) == (12, True)
    assert three.loop.batch_ms < one.loop.batch_ms


def test_through_kafka_refuses_several_workers_without_scale_out() -> None:
    """Several workers without RECSTREAM_SCALE_OUT would be several models: refused up front."""
    from worker.config.settings import Settings
    from worker.tools.evaluate.through_kafka import ThroughKafka

    stream = encode("tiny", Interactions(["u1"], ["i1"], np.array([1.0])))
    with pytest.raises(ValueError, match="SCALE_OUT"):
        ThroughKafka(Settings(), stream, workers=2)
    with pytest.raises(ValueError, match="workers"):
        ThroughKafka(Settings(), stream, workers=0)
