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
ROWS = [0, 1, 2, 1]


def _rows(device: torch.device, rows: list[int] = ROWS) -> torch.Tensor:
    """Integer rows on `device`."""
    return torch.tensor(rows, dtype=torch.int64, device=device)


def _table(device: torch.device = CPU) -> EmbeddingTable:
    generator = torch.Generator(device=device).manual_seed(0)
    return EmbeddingTable(5, device, init_std=0.1, generator=generator)


def _learn_table(table: EmbeddingTable) -> None:
    table.ensure_rows(4)
    table.apply_gradients(_rows(table.device), torch.ones(4, 5, device=table.device), 0.1)


def _history(device: torch.device = CPU) -> SeenHistory:
    return SeenHistory(3, device)


def _learn_history(history: SeenHistory) -> None:
    device = history.device
    times = torch.tensor([1.0, 2.0, 3.0, 4.0], device=device)
    history.add(_rows(device), _rows(device, [4, 5, 6, 7]), times)


def _prior(device: torch.device = CPU) -> PopularityPrior:
    return PopularityPrior(10.0, device)


def _learn_prior(prior: PopularityPrior) -> None:
    now = 5.0 if prior.capacity == 0 else 50.0
    prior.add(_rows(prior.device), torch.ones(4, device=prior.device), now=now, rows=4)


def _transitions(device: torch.device = CPU) -> ItemTransitions:
    return ItemTransitions(4, 2, 0.5, device)


def _learn_transitions(table: ItemTransitions) -> None:
    device = table.device
    table.add(_rows(device, [0, 0, 1]), _rows(device, [1, 2, 2]), torch.ones(3, device=device))


def _covisit(device: torch.device = CPU) -> CoVisitation:
    return CoVisitation(slots=3, half_life=50.0, device=device)


def _learn_covisit(table: CoVisitation) -> None:
    device = table.device
    before, after = _rows(device, [0, 0, 1, 3]), _rows(device, [1, 2, 2, 0])
    table.add(before, after, torch.ones(4, device=device))


def _term(device: torch.device = CPU) -> TransitionTerm:
    return TransitionTerm(_transitions(device), _covisit(device))


def _learn_term(term: TransitionTerm) -> None:
    device = term.table.device
    term.add(_rows(device, [0, 0, 1]), _rows(device, [1, 2, 2]), torch.ones(3, device=device))


def _trending(device: torch.device = CPU) -> Trending:
    return Trending((10.0, float("inf")), device)


def _learn_trending(trending: Trending) -> None:
    clock = trending.clock + 5.0
    device = trending.device
    trending.add(_rows(device, [0, 2, 2]), torch.ones(3, device=device), clock, rows=4)


def _ranker(device: torch.device = CPU) -> OnlineRanker:
    return OnlineRanker(3, RankerConfig(hidden=2), device)


def _learn_ranker(ranker: OnlineRanker) -> None:
    device = ranker.device
    features = torch.arange(24, dtype=torch.float32, device=device).reshape(2, 4, 3) / 10
    valid = torch.ones(2, 4, dtype=torch.bool, device=device)
    ranker.fit(features, valid, _rows(device, [1, 3]))


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


def _learner(device: torch.device = CPU) -> OnlineLearner:
    return OnlineLearner(LearnerConfig(dim=4, negatives=4, transition_slots=4, seed=1), device)


def _learn_learner(learner: OnlineLearner) -> None:
    device = learner.device
    users = torch.from_numpy(learner.users.rows_for(["u1", "u2", "u3", "u1"])).to(device)
    items = torch.from_numpy(learner.items.rows_for(["i1", "i2", "i3", "i4"])).to(device)
    times = torch.tensor([1.0, 2.0, 3.0, 4.0], device=device)
    learner.learn(users, items, torch.ones(4, device=device), times)


# (make an empty part on a device, teach it something): each part's state must round-trip
# and be a host copy, whatever device the part lives on.
DEVICE_CASES: dict[str, tuple[Callable[[torch.device], Any], Callable[[Any], None]]] = {
    "table": (_table, _learn_table),
    "history": (_history, _learn_history),
    "prior": (_prior, _learn_prior),
    "transitions": (_transitions, _learn_transitions),
    "transition_term": (_term, _learn_term),
    "covisit": (_covisit, _learn_covisit),
    "trending": (_trending, _learn_trending),
    "ranker": (_ranker, _learn_ranker),
    "learner": (_learner, _learn_learner),
}
# ... and the parts that live on the host only (numpy and Python state).
HOST_CASES: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {
    "ids": (_ids, _learn_ids),
    "pending": (_pending, _learn_pending),
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


def _check_round_trip(make: Callable[[], Any], learn: Callable[[Any], None]) -> None:
    """A loaded part gives back the same state; learning after either leaves the state as it was."""
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


@pytest.mark.parametrize("case", list(DEVICE_CASES))
def test_state_round_trips_and_is_a_copy(device: torch.device, case: str) -> None:
    """A part on `device` hands over host copies and takes them back whole, as on the CPU."""
    make, learn = DEVICE_CASES[case]
    _check_round_trip(lambda: make(device), learn)


@pytest.mark.parametrize("case", list(HOST_CASES))
def test_host_state_round_trips_and_is_a_copy(case: str) -> None:
    """A host-only part (id maps, pending counts) gives back the same state, as copies."""
    make, learn = HOST_CASES[case]
    _check_round_trip(make, learn)


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
