"""The online learner's hyper-parameters, checked once when they are made."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LearnerConfig:
    """Hyper-parameters of the online learner (defaults tuned prequentially, docs/accuracy.md)."""

    dim: int = 64
    learning_rate: float = 0.03
    negatives: int = 128
    l2: float = 1e-4
    init_std: float = 0.1
    recent_items: int = 16  # a user's query adds context vectors of their last N items; 0: off
    recent_alpha: float = 0.5  # that sum is divided by N**alpha
    popularity_weight: float = 0.5  # beta: the item bias adds beta * log(decayed clicks); 0: off
    popularity_tau: float = 3600.0  # the decay's time constant, in the popularity clock's unit
    popularity_clock: str = "time"  # "time": event time in seconds; "events": events learned
    bias_decay: float = 0.9  # >0: the bias column's accumulator decays (RMSprop); 0: Adagrad
    transition_slots: int = 256  # successors kept per item for the transition term; 0: off
    transition_window: int = 16  # pairs up to this many clicks apart (at most recent_items)
    transition_decay: float = 0.9  # a pair `d` clicks apart weighs decay ** (d - 1)
    covisit_slots: int = 32  # co-clicked neighbours kept per item (models/covisit.py)
    covisit_half_life: float = 1e6  # pairs after which a co-visit count weighs half
    seed: int = 0

    def __post_init__(self) -> None:
        """Reject values that would make the update meaningless."""
        bounds = {
            "dim": (self.dim >= 1, ">= 1"),
            "learning_rate": (self.learning_rate > 0, "> 0"),
            "negatives": (self.negatives >= 1, ">= 1"),
            "l2": (self.l2 >= 0, ">= 0"),
            "recent_items": (self.recent_items >= 0, ">= 0"),
            "popularity_weight": (self.popularity_weight >= 0, ">= 0"),
            "popularity_tau": (self.popularity_tau > 0, "> 0"),
            "popularity_clock": (self.popularity_clock in ("time", "events"), "time or events"),
            "bias_decay": (0 <= self.bias_decay < 1, "in [0, 1)"),
            "transition_slots": (self.transition_slots >= 0, ">= 0"),
            "transition_window": (self.transition_window >= 1, ">= 1"),
            "transition_decay": (0 < self.transition_decay <= 1, "in (0, 1]"),
            "covisit_slots": (self.covisit_slots >= 1, ">= 1"),
            "covisit_half_life": (self.covisit_half_life > 0, "> 0"),
        }
        for name, (holds, rule) in bounds.items():
            if not holds:  # NaN fails every comparison, so it lands here too
                raise ValueError(f"{name} must be {rule}, got {getattr(self, name)}")
