"""The online learner's hyper-parameters, their defaults and their bounds, written once.

No torch here: `worker/config/parts.py` reads the defaults and `BOUNDS` to build the
`RECSTREAM_*` model settings, so the variables and the config can never disagree,
and reading the settings (`recstream healthcheck`) loads no model code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, get_args

PopularityClock = Literal["time", "events"]


@dataclass(frozen=True)
class Bound:
    """An interval of allowed values; a side left None is open (Pydantic's `ge/gt/le/lt`)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def holds(self, value: float) -> bool:
        """Whether `value` lies inside (NaN fails every comparison, so it never does)."""
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )

    def limits(self) -> dict[str, float]:
        """The sides that are set, as keyword arguments for `pydantic.Field`."""
        return {
            side: limit for side, limit in dataclasses.asdict(self).items() if limit is not None
        }

    def __str__(self) -> str:
        """The rule in words, e.g. `>= 2 and <= 4096`."""
        signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
        return " and ".join(f"{signs[side]} {limit:g}" for side, limit in self.limits().items())


# Every bounded field of `LearnerConfig`; the settings take the same ones. The upper bounds
# keep every RECSTREAM_* number finite and far above any use (README, "Settings").
BOUNDS: dict[str, Bound] = {
    "dim": Bound(ge=2, le=4096),
    "learning_rate": Bound(gt=0, le=10),
    "negatives": Bound(ge=1, le=65_536),
    "l2": Bound(ge=0, le=1),
    "recent_items": Bound(ge=0, le=1024),
    "popularity_weight": Bound(ge=0, le=100),
    "popularity_tau": Bound(gt=0, le=1e9),
    "bias_decay": Bound(ge=0, lt=1),
    "transition_slots": Bound(ge=0, le=4096),
    "transition_window": Bound(ge=1, le=1024),
    "transition_decay": Bound(gt=0, le=1),
    "covisit_slots": Bound(ge=1, le=4096),
    "covisit_half_life": Bound(gt=0, le=1e15),
    "seed": Bound(ge=0, le=(1 << 63) - 1),
}


@dataclass(frozen=True)
class LearnerConfig:
    """Hyper-parameters of the online learner (defaults tuned prequentially, docs/accuracy.md)."""

    dim: int = 64
    learning_rate: float = 0.03
    negatives: int = 128
    l2: float = 1e-4
    init_std: float = 0.1
    recent_items: int = 16  # the query adds context vectors of the last N seen items; 0: off
    recent_alpha: float = 0.5  # that sum is divided by N**alpha
    popularity_weight: float = 0.5  # beta: the item bias adds beta * log(decayed clicks); 0: off
    popularity_tau: float = 3600.0  # the decay's time constant, in the popularity clock's unit
    popularity_clock: PopularityClock = "time"  # "time": event time in s; "events": learned
    bias_decay: float = 0.9  # >0: the bias column's accumulator decays (RMSprop); 0: Adagrad
    transition_slots: int = 256  # successors kept per item for the transition term; 0: off
    transition_window: int = 16  # pairs up to this many clicks apart (at most recent_items)
    transition_decay: float = 0.9  # a pair `d` clicks apart weighs decay ** (d - 1)
    covisit_slots: int = 32  # co-clicked neighbours kept per item (models/covisit.py)
    covisit_half_life: float = 1e6  # pairs after which a co-visit count weighs half
    seed: int = 0

    def __post_init__(self) -> None:
        """Reject values that would make the update meaningless (the rules of `BOUNDS`)."""
        for name, bound in BOUNDS.items():
            if not bound.holds(getattr(self, name)):
                raise ValueError(f"{name} must be {bound}, got {getattr(self, name)}")
        clocks = get_args(PopularityClock)
        if self.popularity_clock not in clocks:
            raise ValueError(
                f"popularity_clock must be {' or '.join(clocks)}, got {self.popularity_clock}"
            )


def defaults() -> dict[str, object]:
    """Each field's default, by name: what an unset RECSTREAM_* model variable means."""
    return {field.name: field.default for field in dataclasses.fields(LearnerConfig)}
