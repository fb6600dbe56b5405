"""The two stages: each source reaching a list, the ranker learning, no label leak."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ranking_checks import assert_same_ranking

from index.candidates.base import CandidateQuery
from index.candidates.vector import VectorSource
from index.exact import ExactIndex
from models.history import SeenHistory
from models.learner import LearnerConfig, OnlineLearner
from models.ranker import OnlineRanker, RankerConfig
from stream.payload import recommendations
from worker.engine.engine import Engine
from worker.engine.side_by_side import user_chunks
from worker.engine.stage_config import StageConfig
from worker.engine.two_stage import Candidates

SMALL = {"vector": 4, "covisit": 8, "successors": 8, "trending": 6, "cold": 4}
SOURCES_ALL = ("vector", "covisit", "successors", "trending", "cold")


def _engine(
    device: torch.device, sources: tuple[str, ...], top_k: int = 3, **widths: int
) -> Engine:
    learner = OnlineLearner(
        LearnerConfig(dim=8, negatives=8, transition_slots=16), device, SeenHistory(64, device)
    )
    config = StageConfig(**{**SMALL, **widths}, sources=sources)
    return Engine(learner, ExactIndex(), top_k, stages=config)


def _learn(engine: Engine, users: list[str], items: list[str], ts: float = 1.0) -> None:
    n = len(users)
    engine.learn(users, items, np.full(n, ts), np.ones(n, dtype=np.float32))


def _list(engine: Engine, user: str) -> list[str]:
    row = torch.tensor([engine.learner.users.row(user)])
    return recommendations(engine.lists(engine.rank(row)))[0].items


def _filler(engine: Engine, items: int = 40) -> None:
    """Background clicks spread over many items, so no planted item is popular by accident."""
    for n in range(items):
        _learn(engine, [f"bg{n % 7}"], [f"f{n}"])


def test_a_planted_co_visit_reaches_the_list(device: torch.device) -> None:
    """Users who click b also click a (b first): a newcomer who clicks a is shown b."""
    engine = _engine(device, ("vector", "covisit"))
    _filler(engine)
    for n in range(20):
        _learn(engine, [f"u{n}", f"u{n}"], ["b", "a"])  # b before a: only an unordered pair
    _learn(engine, ["new"], ["a"])
    assert "b" in _list(engine, "new")


def test_a_planted_successor_reaches_the_list(device: torch.device) -> None:
    """Users who click a then b: a newcomer who clicks a is shown b first."""
    engine = _engine(device, ("vector", "successors"))
    _filler(engine)
    for n in range(20):
        _learn(engine, [f"u{n}", f"u{n}"], ["a", "b"])
    _learn(engine, ["new"], ["a"])
    assert _list(engine, "new")[0] == "b"


def test_a_planted_trend_reaches_the_list(device: torch.device) -> None:
    """An item many users clicked just now is on the list of a user who never met it."""
    engine = _engine(device, ("vector", "trending"), vector=2)
    _filler(engine)
    _learn(engine, [f"fan{n}" for n in range(30)], ["hot"] * 30, ts=2.0)
    _learn(engine, ["new"], ["f3"], ts=3.0)
    assert "hot" in _list(engine, "new")


def test_a_planted_vector_neighbour_is_proposed_first() -> None:
    """The vector source proposes the item whose vector the query points at."""
    items = torch.eye(6)
    index = ExactIndex()
    index.refresh(items, torch.arange(6))
    none = torch.full((1, 1), -1)
    query = CandidateQuery(
        index=index,
        user_rows=torch.zeros(1, dtype=torch.long),
        queries=items[[4]] * 3,
        seen=none,
        seen_counts=torch.zeros(1, dtype=torch.long),
        recent=none,
        clicks=torch.zeros(1, dtype=torch.long),
        trending=torch.full((1, 1), -1),
        cold=torch.full((1,), -1),
        unavailable=None,
        extent=6,
    )
    proposal = VectorSource(width=3).propose(query)
    assert int(proposal.rows[0, 0]) == 4


def test_the_ranker_learns_to_prefer_the_source_that_predicts_the_stream() -> None:
    """Column 0 (where it starts) is noise, column 2 predicts the click: it comes to rank by 2."""
    gen = torch.Generator().manual_seed(5)
    ranker = OnlineRanker(3, RankerConfig(hidden=4, learning_rate=0.05), torch.device("cpu"))
    valid = torch.ones(64, 20, dtype=torch.bool)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.randn(64, 20, 3, generator=gen)
        positive = features[:, :, 2].argmax(1)
        return features, positive

    def accuracy() -> float:
        features, positive = batch()
        return float((ranker.score(features).argmax(1) == positive).float().mean())

    before = accuracy()
    for _ in range(300):
        features, positive = batch()
        ranker.fit(features, valid, positive)
    assert before < 0.3  # one in 20 by chance, whatever the noise
    assert accuracy() > 0.8


def test_the_ranker_learns_each_click_before_the_model_does(device: torch.device) -> None:
    """No label leak: when a click's candidates are built, nothing has learned that click yet."""
    engine = _engine(device, ("vector", "covisit", "successors", "trending", "cold"))
    _filler(engine)
    seen_at_study: list[tuple[int, bool]] = []
    study = engine.stages.study

    def spy(user_rows: np.ndarray, clicked: torch.Tensor) -> None:
        seen = engine.history.seen(torch.from_numpy(user_rows).to(device))
        seen_at_study.append((engine.learner.steps, bool((seen == clicked.unsqueeze(1)).any())))
        study(user_rows, clicked)

    engine.stages.study = spy  # type: ignore[method-assign]
    steps = engine.learner.steps
    _learn(engine, ["bg1", "bg2"], ["f3", "f4"])  # known users, items new to them: both taught
    assert seen_at_study == [(steps, False)]
    assert engine.learner.steps == steps + 1


def test_a_studied_lesson_is_taught_once_beside_the_write_or_at_the_next_study(
    device: torch.device,
) -> None:
    """`learn` builds the lesson; `train_ranker` (or the next `learn`) teaches it, once."""
    engine = _engine(device, ("vector", "covisit", "successors", "trending", "cold"))
    _filler(engine)
    steps = engine.stages.ranker.steps
    _learn(engine, ["bg1", "bg2"], ["f3", "f4"])
    assert engine.stages.ranker.steps == steps  # studied, not yet taught
    engine.train_ranker()
    engine.train_ranker()  # nothing pending: no second step
    assert engine.stages.ranker.steps == steps + 1
    fit = engine.stages.last_fit
    assert fit is not None
    assert fit.events == 2
    _learn(engine, ["bg1", "bg2"], ["f5", "f6"])
    _learn(engine, ["bg1", "bg2"], ["f7", "f8"])  # teaches the lesson the last one left
    assert engine.stages.ranker.steps == steps + 2
    engine.stages.state_dict()  # a snapshot holds every lesson studied
    assert engine.stages.ranker.steps == steps + 3


def test_candidates_stay_bounded_as_the_catalogue_grows(device: torch.device) -> None:
    """However many items, a user's candidates are at most the sources' widths, lists full."""
    engine = _engine(device, ("vector", "covisit", "successors", "trending", "cold"), top_k=5)
    width = engine.stages.config.width
    rng = np.random.default_rng(0)
    for items in (100, 2_000, 20_000):
        ids = [f"i{n}" for n in rng.integers(0, items, 2_000)]
        users = [f"u{n}" for n in rng.integers(0, 50, 2_000)]
        _learn(engine, users, ids)
        rows = torch.arange(len(engine.learner.users), device=device)
        candidates = engine.stages.candidates(rows)
        assert candidates.rows.shape[1] <= width
        assert candidates.features.shape[:2] == candidates.rows.shape
        ranked = engine.rank(rows)
        assert (ranked.item_rows >= 0).all()  # the vector source alone fills a list


def test_stage_state_round_trips_and_rankers_blend(device: torch.device) -> None:
    """Trending counts and the ranker come back from `state_dict`; blending averages rankers."""
    engine = _engine(device, ("vector", "covisit", "successors", "trending", "cold"))
    _filler(engine)
    _learn(engine, ["bg1", "bg2", "bg3"], ["f5", "f9", "f9"], ts=4.0)
    state = engine.stages.state_dict()
    other = _engine(device, ("vector", "covisit", "successors", "trending", "cold"))
    _filler(other)
    other.stages.load_state_dict(state)
    rows = torch.arange(len(engine.learner.users), device=device)
    torch.testing.assert_close(
        other.stages.ranker.score(engine.stages.candidates(rows).features),
        engine.stages.ranker.score(engine.stages.candidates(rows).features),
    )
    assert other.stages.trending.clock == engine.stages.trending.clock
    fresh = OnlineRanker(len(engine.stages.names), RankerConfig(), device)
    mine = engine.stages.ranker.linear.detach().clone()
    fresh.blend([engine.stages.ranker.state_dict()])
    torch.testing.assert_close(fresh.linear.detach(), (mine + _start(len(mine), device)) / 2)


def _start(features: int, device: torch.device) -> torch.Tensor:
    """A fresh ranker's linear term: 1 on column 0 (the vector score), 0 elsewhere."""
    start = torch.zeros(features, device=device)
    start[0] = 1.0
    return start


@pytest.mark.parametrize("bad", [("covisit",), ("vector", "nope")])
def test_unknown_or_missing_sources_are_refused(bad: tuple[str, ...]) -> None:
    """The vector source is required and names must be known."""
    with pytest.raises(ValueError, match="source"):
        StageConfig(sources=bad)


def test_a_later_click_labels_the_candidate_set_its_user_had_before() -> None:
    """Delayed labels: a set kept at one batch is labelled by the user's click at a later one."""
    from models.delayed import DelayedSets

    store = DelayedSets(slots=4, uses=2, device=torch.device("cpu"), per_batch=4)
    rows = torch.tensor([[5, 6, 7, -1], [1, 2, 3, 4]])
    features = torch.arange(32, dtype=torch.float32).reshape(2, 4, 4)
    assert store.labelled(np.array([10, 11]), torch.tensor([6, 2])) is None  # nothing kept yet
    store.store(np.array([10, 11]), rows, features)
    assert len(store) == 2
    found = store.labelled(np.array([11, 12, 10]), torch.tensor([4, 9, 9]))
    assert found is not None
    assert found.events.tolist() == [0, 2]  # user 12 had no set
    # 4 is user 11's fourth candidate; 9 was not user 10's
    assert found.positive.tolist() == [3, -1]
    torch.testing.assert_close(found.features[0], features[1])
    assert found.valid[1].tolist() == [True, True, True, False]
    assert found.ages.tolist() == [1, 1]  # each set's first later click
    again = store.labelled(np.array([11]), torch.tensor([1]))  # user 11's second use: spent
    assert again is not None
    assert again.ages.tolist() == [2]
    assert len(store) == 1


def test_two_later_clicks_in_one_batch_are_told_apart_by_age() -> None:
    """A user's three clicks in one batch are the set's first, second and third later clicks."""
    from models.delayed import DelayedSets

    store = DelayedSets(slots=4, uses=5, device=torch.device("cpu"), per_batch=4)
    store.store(np.array([10, 11]), torch.tensor([[5, 6], [1, 2]]), torch.zeros(2, 2, 3))
    found = store.labelled(np.array([10, 11, 10, 10]), torch.tensor([5, 1, 6, 7]))
    assert found is not None
    assert found.ages.tolist() == [1, 1, 2, 3]


def test_the_mixed_heads_rank_and_learn(device: torch.device) -> None:
    """With a later head mixed in, lists still fill and both heads learn."""
    learner = OnlineLearner(
        LearnerConfig(dim=8, negatives=8, transition_slots=16), device, SeenHistory(64, device)
    )
    config = StageConfig(**SMALL, next_weight=0.5, delayed_sets=8)
    engine = Engine(learner, ExactIndex(), 3, stages=config)
    _filler(engine)
    for n in range(10):
        _learn(engine, [f"bg{n % 7}", f"bg{(n + 3) % 7}"], [f"f{n + 20}", f"f{n + 1}"])
    assert engine.stages.later.steps > 0
    rows = torch.arange(len(engine.learner.users), device=device)
    assert (engine.rank(rows).item_rows >= 0).all()


def test_a_backlogged_batch_teaches_the_ranker_once_per_learn_step(device: torch.device) -> None:
    """A batch of three learn steps' clicks is studied before each step, each taught once."""
    engine = _engine(device, ("vector", "covisit", "successors", "trending", "cold"))
    engine.learn_chunk = 4
    _filler(engine)
    ranker, learner = engine.stages.ranker, engine.learner
    before = (ranker.steps, learner.steps)
    users = [f"bg{n % 7}" for n in range(12)]
    _learn(engine, users, [f"f{(5 * n) % 40}" for n in range(12)])
    assert (ranker.steps - before[0], learner.steps - before[1]) == (2, 3)  # the last: pending
    engine.train_ranker()
    assert ranker.steps - before[0] == 3


def test_users_ranked_in_chunks_get_the_lists_of_one_pass(device: torch.device) -> None:
    """Ranking a few users at a time (bounded memory) gives the same lists as all at once."""
    engine = _engine(device, ("vector", "covisit", "successors", "trending", "cold"), top_k=5)
    rng = np.random.default_rng(2)
    users = [f"u{n}" for n in rng.integers(0, 30, 600)]
    _learn(engine, users, [f"i{n}" for n in rng.integers(0, 80, 600)])
    rows = torch.arange(len(engine.learner.users), device=device)
    stages = engine.stages
    whole = stages.rank(rows, 5, None)
    stages.rank_chunk = 7
    chunked = stages.rank(rows, 5, None)
    assert_same_ranking(chunked[0].cpu(), chunked[1].cpu(), whole[0].cpu(), whole[1].cpu())


def _side_by_side_engine(seed: int) -> tuple[Engine, torch.Tensor]:
    """An engine whose last batch wrote successor rings the rank has not compacted yet."""
    engine = _engine(torch.device("cpu"), SOURCES_ALL, top_k=5)
    rng = np.random.default_rng(seed)
    _learn(engine, [f"u{n}" for n in range(900)], [f"i{n % 90}" for n in range(900)])
    users = [f"u{n}" for n in rng.integers(0, 900, 2000)]
    _learn(engine, users, [f"i{n}" for n in rng.integers(0, 90, 2000)])
    return engine, torch.from_numpy(engine.learner.users.lookup(sorted(set(users))))


def test_chunks_ranked_side_by_side_get_the_lists_of_the_same_chunks_ranked_alone() -> None:
    """Two threads ranking chunks at once (a CPU's) give what one thread gives chunk by chunk.

    The successor rings written by the last batch are compacted as one set before the
    threads start, so the reference prepares the same way first; then every list (ties
    included) and score must match, and a second engine built alike must agree exactly.
    """
    engine, rows = _side_by_side_engine(3)
    side_by_side = engine.stages.rank(rows, 5, None, threads=2)
    twin, twin_rows = _side_by_side_engine(3)
    again = twin.stages.rank(twin_rows, 5, None, threads=2)
    assert torch.equal(side_by_side[0], again[0])
    reference, _ = _side_by_side_engine(3)
    chunks = user_chunks(rows, reference.stages.rank_chunk, 2)
    assert len(chunks) == 2
    reference.stages._prepare_side_by_side(rows, None, max(c.numel() for c in chunks))
    alone = [reference.stages.rank(chunk, 5, None, threads=1) for chunk in chunks]
    expected = torch.cat([a[0] for a in alone]), torch.cat([a[1] for a in alone])
    assert_same_ranking(side_by_side[0], side_by_side[1], *expected)


def test_a_user_between_sessions_is_shown_what_is_popular(device: torch.device) -> None:
    """Past `idle_after_s` a popular candidate overtakes the ranker's; mid-session it does not."""
    stages = _engine(device, ("vector", "covisit", "successors", "trending", "cold")).stages
    features = torch.zeros(2, 3, len(stages.names), device=device)
    features[:, :, stages.names.index("vector_score")] = torch.tensor([5.0, 0.0, 1.0])
    features[:, :, stages.popular_column] = torch.tensor([-20.0, 0.0, -20.0])
    rows = torch.arange(3, device=device).expand(2, -1)
    idle = torch.tensor([10.0, stages.config.idle_after_s], device=device)
    scores = stages.score(Candidates(rows, features, idle))
    assert (scores[0, 2] > scores[0, 1]).item()  # mid-session: the ranker's order
    assert (scores[1, 1] > scores[1, 2]).item()  # between sessions: the popular one first
    assert scores.argmax(1).tolist() == [0, 0]


def test_a_user_is_ranked_again_once_when_their_pause_passes_idle_after(
    device: torch.device,
) -> None:
    """The batch whose clock passes a user's last click plus `idle_after_s` names them, once."""
    engine = _engine(device, ("vector", "covisit", "successors", "trending", "cold"))
    pause = engine.stages.config.idle_after_s
    _learn(engine, ["a", "b"], ["x", "y"], ts=100.0)
    _learn(engine, ["b"], ["z"], ts=100.0 + pause / 2)
    quiet = engine.learn(["c"], ["x"], np.array([100.0 + pause]), np.ones(1, dtype=np.float32))
    resting = quiet.resting
    assert resting is not None
    assert list(engine.learner.users.ids_of(resting)) == ["a"]
    assert quiet.to_rank.tolist() == [*quiet.touched.tolist(), *resting.tolist()]
    later = engine.learn(["c"], ["y"], np.array([101.0 + pause]), np.ones(1, dtype=np.float32))
    assert later.resting is not None
    assert later.resting.numel() == 0


def test_many_users_falling_idle_at_once_are_spread_over_batches_each_once() -> None:
    """500 users idle together: a one-click batch re-ranks a bounded share, and each user once."""
    from worker.engine.between_sessions import MIN_RESTING

    engine = _engine(torch.device("cpu"), ("vector", "trending"))
    pause = engine.stages.config.idle_after_s
    for second in range(5):  # five sights of 100 users each
        users = [f"u{second}-{n}" for n in range(100)]
        _learn(engine, users, [f"i{n % 7}" for n in range(100)], ts=100.0 + second)
    taken: list[str] = []
    for step in range(8):
        learned = engine.learn(
            ["late"], ["i0"], np.array([105.0 + pause + step]), np.ones(1, dtype=np.float32)
        )
        assert learned.resting is not None
        ids = engine.learner.users.ids_of(learned.resting.cpu().numpy()).tolist()
        assert len(ids) <= MIN_RESTING  # a sight is split where the bound falls
        taken += ids
    assert len(taken) == len(set(taken)) == 500


def test_item_features_read_per_candidate_equal_the_whole_catalogue_table() -> None:
    """A catalogue larger than the candidates reads their features directly: the same values."""
    engine = _engine(torch.device("cpu"), ("vector", "covisit", "trending"))
    _filler(engine)
    _learn(engine, [f"fan{n}" for n in range(9)], ["hot"] * 9, ts=5.0)
    stages = engine.stages
    users = torch.arange(len(engine.learner.users))
    small = stages.candidates(users)  # the batch's candidates outnumber the 41 items: table
    assert engine.learner.items.extent <= small.rows.numel()
    rows = small.rows.clamp(min=0)
    torch.testing.assert_close(stages._item_columns(rows), stages._item_table()[rows])
    one = stages.candidates(users[:1])  # a single user's few candidates: read per candidate
    assert engine.learner.items.extent > one.rows.numel()
    torch.testing.assert_close(one.features, small.features[:1, : one.rows.shape[1]])


@pytest.mark.parametrize(("covisit_window", "reaches"), [(10, True), (4, False)])
def test_co_visits_reach_back_over_the_covisit_window(covisit_window: int, reaches: bool) -> None:
    """A click six back still proposes its co-visits within a window of 10, not within 4."""
    engine = _engine(torch.device("cpu"), ("vector", "covisit"), covisit_window=covisit_window)
    _filler(engine)
    for n in range(20):
        _learn(engine, [f"u{n}", f"u{n}"], ["b", "a"])
    _learn(engine, ["new"] * 7, ["a"] + [f"f{n}" for n in range(6)])
    stages = engine.stages
    row = torch.tensor([engine.learner.users.row("new")])
    [covisit] = [source for source in stages.sources if source.name == "covisit"]
    proposed = covisit.propose(stages._query(row, None)).rows[0]
    b = engine.learner.items.row("b")
    assert (b in proposed.tolist()) is reaches


def test_every_candidate_carries_the_co_visit_score_whichever_source_proposed_it() -> None:
    """A co-visited item cut from the co-visit source's width still gets its score as a feature.

    With a co-visit width of 1, "c" (co-visited less than "b") is proposed by the vector
    source only; its co-visit score column is still the one the source found for it.
    """
    engine = _engine(torch.device("cpu"), ("vector", "covisit"), covisit=1, vector=60)
    _filler(engine)
    for n in range(20):
        _learn(engine, [f"u{n}", f"u{n}"], ["b", "a"])
    for n in range(8):
        _learn(engine, [f"v{n}", f"v{n}"], ["c", "a"])
    _learn(engine, ["new"], ["a"])
    stages = engine.stages
    row = torch.tensor([engine.learner.users.row("new")])
    [covisit] = [source for source in stages.sources if source.name == "covisit"]
    proposal = covisit.propose(stages._query(row, None))
    b, c = engine.learner.items.row("b"), engine.learner.items.row("c")
    assert proposal.rows[0].tolist() == [b]
    candidates = stages.candidates(row)
    column = stages.names.index("covisit_score")
    slot = candidates.rows[0].tolist().index(c)
    assert proposal.reach is not None
    found = proposal.reach.lookup(torch.tensor([[c, b, 10_000]]))[0][0]
    assert float(found[0]) > 0
    assert float(found[2]) == 0  # a row it never found
    torch.testing.assert_close(candidates.features[0, slot, column], found[0])


def test_the_taste_mix_lifts_what_the_recent_clicks_agree_on() -> None:
    """Ranked alone, the ranker's favourite leads; mixed, the item every recent click co-visits."""
    from worker.engine.mix import mix
    from worker.engine.taste import taste_log_p

    scores = torch.log_softmax(torch.tensor([[4.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]]), 1)
    covisit = torch.tensor([[0.0, 9.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    taste = taste_log_p(covisit, torch.ones(2, 4, dtype=torch.bool))
    mixed = mix(scores, taste, 0.6)
    assert int(mixed[0].argmax()) == 1
    assert float(mixed[0, 3]) < float(mixed[0, 2])  # co-visited by nothing: the ranker's share only
    torch.testing.assert_close(mixed[1], scores[1])  # no co-visits: the ranker's order as it was
    torch.testing.assert_close(mix(scores, taste, 0.0), scores)


def test_a_clicks_co_visits_are_normalised_by_their_total() -> None:
    """With normalisation, a popular click's many co-visits weigh no more than a rare one's."""
    engine = _engine(torch.device("cpu"), ("vector", "covisit"))
    _filler(engine)
    for n in range(30):  # "pop" co-visits "x" 30 times; "rare" co-visits "y" 3 times
        _learn(engine, [f"p{n}", f"p{n}"], ["x", "pop"])
    for n in range(3):
        _learn(engine, [f"r{n}", f"r{n}"], ["y", "rare"])
    _learn(engine, ["new", "new"], ["pop", "rare"])
    stages = engine.stages
    row = torch.tensor([engine.learner.users.row("new")])
    [covisit] = [source for source in stages.sources if source.name == "covisit"]
    x, y = engine.learner.items.row("x"), engine.learner.items.row("y")

    def scores(normalise: float) -> tuple[float, float]:
        covisit.normalise = normalise
        proposal = covisit.propose(stages._query(row, None))
        assert proposal.reach is not None
        found = proposal.reach.lookup(torch.tensor([[x, y]]))[0][0]
        return float(found[0]), float(found[1])

    raw_x, raw_y = scores(0.0)
    fair_x, fair_y = scores(1.0)
    assert raw_x > 3 * raw_y  # counts: the popular click dominates
    assert fair_x < 1.5 * fair_y  # shares of each click's total: comparable


def _taste_engine(learned: bool) -> Engine:
    learner = OnlineLearner(
        LearnerConfig(dim=8, negatives=8, transition_slots=16),
        torch.device("cpu"),
        SeenHistory(64, torch.device("cpu")),
    )
    config = StageConfig(**SMALL, sources=("vector", "covisit"), taste_learned=learned)
    return Engine(learner, ExactIndex(), 3, stages=config)


def _two_groups(engine: Engine, batches: int) -> None:
    """Two groups of users, each clicking its own items in turn: later clicks co-visit earlier."""
    for step in range(batches):
        users = [f"u{n}" for n in range(12)]
        items = [f"g{n % 2}-{(step + n) % 9}" for n in range(12)]
        _learn(engine, users, items, ts=float(step))
        engine.train_ranker()


def test_the_taste_share_learns_from_later_clicks_and_round_trips() -> None:
    """Later clicks on earlier candidate sets move the share; a new worker restores it."""
    engine = _taste_engine(learned=True)
    _two_groups(engine, 30)
    taste = engine.stages.taste
    assert float(taste.labels) > 0
    assert abs(float(taste.value) - 0.3) > 1e-3
    restored = _taste_engine(learned=True)
    restored.stages.load_state_dict(engine.stages.state_dict())
    torch.testing.assert_close(restored.stages.taste.value, taste.value)


def test_a_fixed_taste_share_stays_as_set() -> None:
    """`taste_learned=False`: the share stays as set, even restored from a learned state."""
    engine = _taste_engine(learned=False)
    _two_groups(engine, 30)
    assert float(engine.stages.taste.labels) == 0
    assert float(engine.stages.taste.value) == pytest.approx(0.3)
    assert len(engine.stages.delayed) == 0  # nothing kept for it (the later head is off)
    learned = _taste_engine(learned=True)
    _two_groups(learned, 30)
    engine.stages.load_state_dict(learned.stages.state_dict())
    assert float(engine.stages.taste.value) == pytest.approx(0.3)


def test_kept_sets_forget_rows_handed_to_new_users_and_items() -> None:
    """A reused user row holds no earlier owner's set; a reused item row is no candidate."""
    from models.delayed import DelayedSets

    store = DelayedSets(slots=4, uses=5, device=torch.device("cpu"), per_batch=4)
    store.store(np.array([10, 11]), torch.tensor([[5, 6], [1, 2]]), torch.zeros(2, 2, 3))
    store.forget_users(np.array([10]))
    store.forget_items(torch.tensor([2]))
    found = store.labelled(np.array([10, 11]), torch.tensor([5, 2]))
    assert found is not None
    assert found.events.tolist() == [1]  # user row 10's set was its earlier owner's
    assert found.positive.tolist() == [-1]  # item row 2 now names another item
    assert found.valid[0].tolist() == [True, False]


def test_labels_younger_than_asked_use_their_set_up_but_are_not_returned() -> None:
    """`min_age`: a set's first clicks count against its uses, and only older ones come back."""
    from models.delayed import DelayedSets

    store = DelayedSets(slots=4, uses=3, device=torch.device("cpu"), per_batch=4)
    store.store(np.array([10]), torch.tensor([[5, 6]]), torch.zeros(1, 2, 3))
    assert store.labelled(np.array([10, 10]), torch.tensor([5, 6]), min_age=3) is None
    found = store.labelled(np.array([10]), torch.tensor([6]), min_age=3)
    assert found is not None
    assert found.ages.tolist() == [3]
    assert found.positive.tolist() == [1]
    assert len(store) == 0  # its third use spent it


def test_a_kept_set_is_replaced_only_once_spent_or_old() -> None:
    """A full ring of young sets keeps them; once they are `min_age_s` old, newcomers take over."""
    from models.delayed import DelayedSets

    store = DelayedSets(slots=2, uses=5, device=torch.device("cpu"), per_batch=2, min_age_s=60)
    store.store(np.array([1, 2]), torch.tensor([[5], [6]]), torch.zeros(2, 1, 3), now=0.0)
    store.store(np.array([3, 4]), torch.tensor([[7], [8]]), torch.zeros(2, 1, 3), now=30.0)
    kept = store.labelled(np.array([1, 2, 3]), torch.tensor([5, 6, 7]))
    assert kept is not None
    assert kept.events.tolist() == [0, 1]  # users 1 and 2 kept theirs; 3 found no room
    store.store(np.array([3, 4]), torch.tensor([[7], [8]]), torch.zeros(2, 1, 3), now=61.0)
    taken = store.labelled(np.array([1, 3, 4]), torch.tensor([5, 7, 8]))
    assert taken is not None
    assert taken.events.tolist() == [1, 2]


def _idle_engine(learned: bool) -> Engine:
    learner = OnlineLearner(
        LearnerConfig(dim=8, negatives=8, transition_slots=16),
        torch.device("cpu"),
        SeenHistory(64, torch.device("cpu")),
    )
    config = StageConfig(
        **{**SMALL, "vector": 40},
        idle_after_s=100.0,
        idle_popular_share=0.4,
        idle_learned=learned,
        resting_sets=384,  # 12 kept per batch: every user of these tests
        delayed_uses=2,  # a list kept at rest ends after two clicks: its hits then count
        taste_lag=1,
    )
    return Engine(learner, ExactIndex(), 3, stages=config)


def _returns(engine: Engine, popular: bool, rounds: int = 4) -> None:
    """Users click in sessions; ranked at rest, they come back to a popular or a rare item."""
    users = [f"u{n}" for n in range(12)]
    t = 1.0
    for n in range(30):  # p0-p2 popular, r0-r29 clicked once each
        _learn(engine, [f"bg{n % 7}", f"bg{(n + 1) % 7}"], [f"p{n % 3}", f"r{n}"], ts=t)
    for step in range(rounds):
        _learn(engine, users, [f"r{(n + 5 * step) % 30}" for n in range(12)], ts=t)
        engine.train_ranker()
        t += 500.0  # a pause: the background's clicks move the clock on
        _learn(engine, ["bg0", "bg1"], [f"p{step % 3}", f"p{(step + 1) % 3}"], ts=t)
        engine.rank(torch.tensor([engine.learner.users.row(u) for u in users]))  # at rest
        back = [
            f"p{(n + step) % 3}" if popular else f"r{(n + 7 * step + 3) % 30}" for n in range(12)
        ]
        _learn(engine, users, back, ts=t + 1.0)
        engine.train_ranker()


@pytest.mark.parametrize("popular", [True, False])
def test_the_idle_share_learns_from_users_who_come_back(popular: bool) -> None:
    """Returns to what is popular favour a large popularity share between sessions; rare ones none.

    The counts then round trip through the state (a new worker restores them).
    """
    engine = _idle_engine(learned=True)
    _returns(engine, popular)
    share = engine.stages.idle_share
    assert float(share.labels) > 0
    none, most = float(share.hits[0]), float(share.hits[-1])  # shares 0 and 0.8
    assert most > none if popular else none > most
    restored = _idle_engine(learned=True)
    restored.stages.load_state_dict(engine.stages.state_dict())
    torch.testing.assert_close(restored.stages.idle_share.hits, share.hits)


def test_a_fixed_idle_share_stays_as_set() -> None:
    """`idle_learned=False`: nothing is kept at rest and the share stays, even when restored."""
    engine = _idle_engine(learned=False)
    _returns(engine, popular=True)
    assert len(engine.stages.resting) == 0
    assert float(engine.stages.idle_share.value) == pytest.approx(0.4)
    learned = _idle_engine(learned=True)
    _returns(learned, popular=True)
    engine.stages.load_state_dict(learned.stages.state_dict())
    assert float(engine.stages.idle_share.value) == pytest.approx(0.4)


def test_only_users_at_rest_keep_their_sets() -> None:
    """A user ranked mid-session keeps no set at rest; one ranked after a pause does."""
    engine = _idle_engine(learned=True)
    _learn(engine, ["a", "b"], ["x", "y"], ts=1.0)
    _learn(engine, ["b"], ["z"], ts=300.0)  # b is active, a has paused
    rows = torch.tensor([engine.learner.users.row("a"), engine.learner.users.row("b")])
    engine.rank(rows)
    assert len(engine.stages.resting) == 1
    found = engine.stages.resting.labelled(rows.numpy(), torch.tensor([0, 0]))
    assert found is not None
    assert found.events.tolist() == [0]  # a's


def test_a_rank_in_chunks_keeps_its_most_idle_users_sets_as_one_batch_would() -> None:
    """At most `per_batch` sets a rank, the most idle first, however many chunks it takes."""
    learner = OnlineLearner(
        LearnerConfig(dim=8, negatives=8, transition_slots=16),
        torch.device("cpu"),
        SeenHistory(64, torch.device("cpu")),
    )
    config = StageConfig(**SMALL, idle_after_s=100.0, resting_sets=64)  # 2 a batch
    engine = Engine(learner, ExactIndex(), 3, stages=config)
    users = [f"u{n}" for n in range(9)]
    for n, user in enumerate(users):  # u0 is the most idle, u8 the least
        _learn(engine, [user], [f"i{n}"], ts=float(n))
    _learn(engine, ["bg"], ["i0"], ts=1000.0)
    engine.stages.rank_chunk = 3
    rows = np.array([engine.learner.users.row(u) for u in users])
    engine.rank(torch.from_numpy(rows))
    assert engine.stages.resting.per_batch == 2
    kept = engine.stages.resting.labelled(rows, torch.zeros(9, dtype=torch.long))
    assert kept is not None
    assert sorted(kept.events.tolist()) == [0, 1]  # u0 and u1


def test_a_cpu_ranks_only_the_candidate_slots_its_fullest_user_fills() -> None:
    """Slots past the union's fullest row hold only padding: dropping them changes no list."""
    engine = _engine(torch.device("cpu"), ("vector", "covisit", "successors", "trending", "cold"))
    _filler(engine)
    for n in range(12):
        _learn(engine, [f"u{n % 4}"] * 3, [f"f{n}", f"f{n + 1}", f"f{(3 * n) % 40}"], ts=2.0 + n)
    stages = engine.stages
    users = torch.arange(len(engine.learner.users))
    narrow = stages.candidates(users)
    assert narrow.rows.shape[1] < stages.config.width
    rows, scores = stages.rank(users, 3, None)
    stages.static_shapes = True  # every slot of the union, padding and all
    assert stages.candidates(users).rows.shape[1] == stages.config.width
    want_rows, want_scores = stages.rank(users, 3, None)
    assert_same_ranking(rows, scores, want_rows, want_scores)


def test_kept_sets_survive_narrower_and_wider_candidate_sets() -> None:
    """A CPU's candidate width follows the batch: the ring pads or widens, and loses no set."""
    from models.delayed import DelayedSets

    sets = DelayedSets(4, 5, torch.device("cpu"), per_batch=4)
    sets.store(np.array([0]), torch.tensor([[7, 8, -1]]), torch.ones(1, 3, 2))
    sets.store(np.array([1]), torch.tensor([[9, -1]]), torch.ones(1, 2, 2))  # narrower
    sets.store(np.array([2]), torch.tensor([[5, 6, 4, 3, 2]]), torch.ones(1, 5, 2))  # wider
    assert len(sets) == 3
    labels = sets.labelled(np.array([0, 1, 2]), torch.tensor([8, 9, 2]))
    assert labels is not None
    assert labels.positive.tolist() == [1, 0, 4]
    assert labels.valid.sum(1).tolist() == [2, 1, 5]
    assert labels.features.shape == (3, 5, 2)


def test_under_a_backlog_users_falling_idle_wait_for_a_batch_with_room() -> None:
    """A backlogged batch re-ranks at most its share of them; later batches take the rest, once."""
    from worker.engine.between_sessions import BACKLOG_RESTING_SHARE

    engine = _engine(torch.device("cpu"), ("vector", "trending"))
    pause = engine.stages.config.idle_after_s
    for second in range(5):  # five sights of 200 users each: 1,000 fall due together
        users = [f"u{second}-{n}" for n in range(200)]
        _learn(engine, users, [f"i{n % 7}" for n in range(200)], ts=100.0 + second)
    busy = [f"busy{n}" for n in range(1200)]
    ones = np.ones(1200, dtype=np.float32)
    first = engine.learn(busy, ["i0"] * 1200, np.full(1200, 105.0 + pause), ones, backlog=True)
    assert first.resting is not None
    assert first.resting.numel() == 1200 * BACKLOG_RESTING_SHARE
    assert engine.resting.lag_s(engine.clock) > 0
    taken = engine.learner.users.ids_of(first.resting.numpy()).tolist()
    later = engine.learn(busy, ["i1"] * 1200, np.full(1200, 106.0 + pause), ones)
    assert later.resting is not None
    taken += engine.learner.users.ids_of(later.resting.numpy()).tolist()
    assert len(taken) == len(set(taken)) == 1000
    assert engine.resting.lag_s(engine.clock) == 0
