"""Every stateful part hands over its state as copies and takes it back whole (shared checks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from models.covisit import CoVisitation
from models.errors import StateError
from models.history import SeenHistory
from models.idmap import IdMap
from models.learner import LearnerConfig, OnlineLearner
from models.pending import PendingCounts
from models.prior import PopularityPrior
from models.ranker import OnlineRanker, RankerConfig
from models.rows import RowLimits, RowPolicy
from models.state import StateDict
from models.table import EmbeddingTable
from models.transitions import ItemTransitions, TransitionTerm
from models.trending import Trending

CPU = torch.device("cpu")
ROWS = torch.tensor([0, 1, 2, 1])


def _table() -> EmbeddingTable:
    return EmbeddingTable(5, CPU, init_std=0.1, generator=torch.Generator().manual_seed(0))


def _learn_table(table: EmbeddingTable) -> None:
    table.ensure_rows(4)
    table.apply_gradients(ROWS, torch.ones(4, 5), 0.1)


def _history() -> SeenHistory:
    return SeenHistory(3, CPU)


def _learn_history(history: SeenHistory) -> None:
    history.add(ROWS, torch.tensor([4, 5, 6, 7]), torch.tensor([1.0, 2.0, 3.0, 4.0]))


def _prior() -> PopularityPrior:
    return PopularityPrior(10.0, CPU)


def _learn_prior(prior: PopularityPrior) -> None:
    prior.add(ROWS, torch.ones(4), now=5.0 if prior.capacity == 0 else 50.0, rows=4)


def _transitions() -> ItemTransitions:
    return ItemTransitions(4, 2, 0.5, CPU)


def _learn_transitions(table: ItemTransitions) -> None:
    table.add(torch.tensor([0, 0, 1]), torch.tensor([1, 2, 2]), torch.ones(3))


def _covisit() -> CoVisitation:
    return CoVisitation(slots=3, half_life=50.0, device=CPU)


def _learn_covisit(table: CoVisitation) -> None:
    table.add(torch.tensor([0, 0, 1, 3]), torch.tensor([1, 2, 2, 0]), torch.ones(4))


def _term() -> TransitionTerm:
    return TransitionTerm(_transitions(), _covisit())


def _learn_term(term: TransitionTerm) -> None:
    term.add(torch.tensor([0, 0, 1]), torch.tensor([1, 2, 2]), torch.ones(3))


def _trending() -> Trending:
    return Trending((10.0, float("inf")), CPU)


def _learn_trending(trending: Trending) -> None:
    clock = trending.clock + 5.0
    trending.add(torch.tensor([0, 2, 2]), torch.ones(3), clock, rows=4)


def _ranker() -> OnlineRanker:
    return OnlineRanker(3, RankerConfig(hidden=2), CPU)


def _learn_ranker(ranker: OnlineRanker) -> None:
    features = torch.arange(24, dtype=torch.float32).reshape(2, 4, 3) / 10
    valid = torch.ones(2, 4, dtype=torch.bool)
    ranker.fit(features, valid, torch.tensor([1, 3]))


def _ids() -> IdMap:
    return IdMap()


def _learn_ids(ids: IdMap) -> None:
    ids.rows_for(["a", "b", "c", f"d{ids.extent}"])
    ids.release(np.array([1]))


def _pending() -> PendingCounts:
    return PendingCounts(8)


def _learn_pending(pending: PendingCounts) -> None:
    pending.add({"x": 1, "y": 2, f"z{len(pending)}": 1}, threshold=5)


def _policy() -> RowPolicy:
    users, items = IdMap([f"u{n}" for n in range(3)]), IdMap([f"i{n}" for n in range(3)])
    return RowPolicy.over(users, items, RowLimits(3), RowLimits(3, min_occurrences=2))


def _learn_policy(policy: RowPolicy) -> None:
    policy.admit(["u0", "u9"], ["i1", "rare"], float(len(policy.users.pending) + 10))


def _learner() -> OnlineLearner:
    return OnlineLearner(LearnerConfig(dim=4, negatives=4, transition_slots=4, seed=1), CPU)


def _learn_learner(learner: OnlineLearner) -> None:
    users = torch.from_numpy(learner.users.rows_for(["u1", "u2", "u3", "u1"]))
    items = torch.from_numpy(learner.items.rows_for(["i1", "i2", "i3", "i4"]))
    learner.learn(users, items, torch.ones(4), torch.tensor([1.0, 2.0, 3.0, 4.0]))


# (make an empty part, teach it something): each part's state must round-trip and be a copy.
CASES: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {
    "table": (_table, _learn_table),
    "history": (_history, _learn_history),
    "prior": (_prior, _learn_prior),
    "transitions": (_transitions, _learn_transitions),
    "transition_term": (_term, _learn_term),
    "covisit": (_covisit, _learn_covisit),
    "trending": (_trending, _learn_trending),
    "ranker": (_ranker, _learn_ranker),
    "ids": (_ids, _learn_ids),
    "pending": (_pending, _learn_pending),
    "learner": (_learner, _learn_learner),
}


def _copy(state: StateDict) -> StateDict:
    return {k: v.clone() if isinstance(v, torch.Tensor) else repr(v) for k, v in state.items()}


def _assert_equal(state: StateDict, other: StateDict) -> None:
    assert state.keys() == other.keys()
    for name, value in state.items():
        theirs = other[name]
        if isinstance(value, torch.Tensor):
            assert isinstance(theirs, torch.Tensor), name
            assert value.dtype == theirs.dtype, name
            assert torch.equal(value, theirs), name
        else:
            assert value == theirs, name


def _assert_unchanged(state: StateDict, copy: StateDict) -> None:
    for name, value in state.items():
        if isinstance(value, torch.Tensor):
            held = copy[name]
            assert isinstance(held, torch.Tensor)
            assert torch.equal(value, held), name
        else:
            assert repr(value) == copy[name], name


@pytest.mark.parametrize("case", list(CASES))
def test_state_round_trips_and_is_a_copy(case: str) -> None:
    """A loaded part gives back the same state; learning after either leaves the state as it was."""
    make, learn = CASES[case]
    part = make()
    learn(part)
    state = part.state_dict()
    for value in state.values():
        if isinstance(value, torch.Tensor):
            assert value.device.type == "cpu"
            assert value.is_contiguous()
    kept = _copy(state)
    other = make()
    other.load_state_dict(state)
    _assert_equal(other.state_dict(), state)
    learn(part)  # the part learns on: the state taken before does not move
    learn(other)  # nor does the loaded one share memory with it
    _assert_unchanged(state, kept)
    assert repr(_copy(part.state_dict())) != repr(kept)  # it did learn: the check means something


def test_row_policy_round_trips_over_restored_maps() -> None:
    """Last sights and pending counts come back over id maps of the same extent, as copies."""
    policy = _policy()
    _learn_policy(policy)
    state = policy.state_dict()
    kept = _copy(state)
    other = RowPolicy.over(
        IdMap(policy.users.ids.ids()), IdMap(policy.items.ids.ids()), RowLimits(3), RowLimits(3)
    )
    other.load_state_dict(state)
    _assert_equal(other.state_dict(), state)
    _learn_policy(policy)
    _assert_unchanged(state, kept)


@pytest.mark.parametrize(
    ("make", "name", "bad"),
    [
        (_table, "weight", torch.zeros(2, 3)),
        (_history, "items", torch.zeros(2, 9, dtype=torch.int64)),
        (_transitions, "successors", torch.zeros(2, 9, dtype=torch.int32)),
        (_prior, "log_mass", torch.zeros(2, 2, dtype=torch.float64)),
        (_covisit, "neighbours", torch.zeros(2, 9, dtype=torch.int32)),
        (_ranker, "w1", torch.zeros(5, 5)),
        (_ids, "ids", ["a", "a"]),
        (_pending, "counts", [["a", "b"]]),
    ],
)
def test_a_state_that_does_not_fit_is_a_state_error(
    make: Callable[[], Any], name: str, bad: object
) -> None:
    """Another shape, a grid of another size, repeated ids, malformed pairs: `StateError`."""
    part = make()
    state = part.state_dict()
    state[name] = bad
    with pytest.raises(StateError, match=name if name != "hits" else "grid"):
        part.load_state_dict(state)


def test_a_learner_refuses_tables_and_ids_that_disagree() -> None:
    """Item rows that do not match the item ids, or a missing part, are refused before loading."""
    learner = _learner()
    _learn_learner(learner)
    state = learner.state_dict()
    ids = state["items.ids"]
    assert isinstance(ids, list)
    with pytest.raises(StateError, match="item_table"):
        _learner().load_state_dict({**state, "items.ids": [*ids, "extra"]})
    partial = {k: v for k, v in state.items() if not k.startswith("transition.")}
    with pytest.raises(StateError, match="transition"):
        _learner().load_state_dict(partial)
    lenient = _learner()
    lenient.load_state_dict(partial, strict=False)  # what an older checkpoint holds
    assert lenient.transition is not None
    assert (lenient.transition.table.written == 0).all()
