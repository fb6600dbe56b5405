"""Stage 2: a small model over per-candidate features, learned online from the clicks.

For each click the clicked item is the positive among the candidates its user
had just before it (scored before it is learned, so no label leaks), and the
loss is the softmax cross-entropy over that candidate set: the ranker learns
to put the click first among what stage 1 offered. The model is a linear term
plus a small ReLU layer (interactions: a co-visit counts more for a user
mid-session than for one back after a week), over features standardised by
running means and variances, so no feature's unit sets its learning rate.
The linear term starts on the vector score alone, so an untrained ranker
ranks as the factor model does, and the rest is learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.state import StateDict, host_copy, integer, tensor


@dataclass(frozen=True)
class RankerConfig:
    """Size and learning of the ranker."""

    hidden: int = 16  # ReLU units beside the linear term; 0: linear only
    learning_rate: float = 0.01
    stats_decay: float = 0.999  # running mean/variance decay per training batch
    l2: float = 1e-5
    seed: int = 0

    def __post_init__(self) -> None:
        """Reject values that would make the update meaningless."""
        if self.hidden < 0:
            raise ValueError(f"hidden must be >= 0, got {self.hidden}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 < self.stats_decay < 1:
            raise ValueError(f"stats_decay must be in (0, 1), got {self.stats_decay}")


@dataclass(frozen=True)
class RankerStats:
    """What one training step saw: events with their positive among the candidates, and loss."""

    events: int
    covered: torch.Tensor  # 0-d: events whose clicked item was a candidate
    loss: torch.Tensor  # 0-d: mean softmax loss over the covered events (0 if none)


class OnlineRanker:
    """Scores `[users, candidates, features]` tensors; learns by softmax over each row."""

    def __init__(
        self, features: int, config: RankerConfig, device: torch.device, start: int = 0
    ) -> None:
        """A ranker over `features` columns; `start` is the column the linear term begins on."""
        self.features = features
        self.config = config
        self.device = device
        gen = torch.Generator().manual_seed(config.seed)
        hidden = config.hidden
        self.linear = torch.zeros(features)
        self.linear[start] = 1.0
        self.w1 = torch.randn(features, hidden, generator=gen) * (1.0 / max(1, features) ** 0.5)
        self.b1 = torch.zeros(hidden)
        self.w2 = torch.zeros(hidden)
        self.params = [
            p.to(device).requires_grad_() for p in (self.linear, self.w1, self.b1, self.w2)
        ]
        self.linear, self.w1, self.b1, self.w2 = self.params
        self.optimizer = torch.optim.Adam(self.params, lr=config.learning_rate)
        self.mean = torch.zeros(features, device=device)
        self.var = torch.ones(features, device=device)
        self.steps = 0

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """`[users, candidates]` scores of `[users, candidates, features]` (no gradient)."""
        with torch.no_grad():
            return self._forward(features)

    def _forward(self, features: torch.Tensor) -> torch.Tensor:
        x = (features - self.mean) * torch.rsqrt(self.var + 1e-6)
        out = x @ self.linear
        if self.config.hidden:
            out = out + torch.relu(x @ self.w1 + self.b1) @ self.w2
        return out

    def fit(
        self, features: torch.Tensor, valid: torch.Tensor, positive: torch.Tensor
    ) -> RankerStats:
        """One Adam step on the softmax loss: `positive[n]` is the click's column, `-1` if absent.

        Events whose click was not among their candidates teach nothing here (the
        sources' recall is measured apart); statistics follow every candidate seen.
        """
        events = int(features.shape[0])
        covered = positive >= 0
        zero = torch.zeros((), device=self.device)
        if events == 0:
            return RankerStats(0, zero, zero)
        self._follow(features, valid)
        logits = self._forward(features).masked_fill(~valid, float("-inf"))
        log_p = torch.log_softmax(logits, dim=1)
        picked = log_p.gather(1, positive.clamp(min=0).unsqueeze(1)).squeeze(1)
        picked = torch.where(covered & torch.isfinite(picked), picked, 0.0)
        count = covered.sum()
        loss = -picked.sum() / count.clamp(min=1)
        penalty = self.config.l2 * sum((p * p).sum() for p in self.params)
        self.optimizer.zero_grad(set_to_none=True)
        (loss + penalty).backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        self.steps += 1
        return RankerStats(events, count, loss.detach())

    def _follow(self, features: torch.Tensor, valid: torch.Tensor) -> None:
        """Move the running mean and variance toward this batch's valid candidates."""
        weight = valid.unsqueeze(2).to(features.dtype)
        count = weight.sum().clamp(min=1)
        mean = (features * weight).sum((0, 1)) / count
        var = (((features - mean) ** 2) * weight).sum((0, 1)) / count
        decay = self.config.stats_decay if self.steps else 0.0
        self.mean.mul_(decay).add_((1 - decay) * mean)
        self.var.mul_(decay).add_((1 - decay) * var)

    def state_dict(self) -> StateDict:
        """Parameters, feature statistics and step count (the optimiser restarts its moments)."""
        return {
            "linear": host_copy(self.linear),
            "w1": host_copy(self.w1),
            "b1": host_copy(self.b1),
            "w2": host_copy(self.w2),
            "mean": host_copy(self.mean),
            "var": host_copy(self.var),
            "steps": self.steps,
        }

    def load_state_dict(self, state: StateDict) -> None:
        """Restore `state_dict()` output of a ranker of the same shape."""
        f, h = self.features, self.config.hidden
        shapes = {"linear": (f,), "w1": (f, h), "b1": (h,), "w2": (h,)}
        with torch.no_grad():
            for name, shape in shapes.items():
                getattr(self, name).copy_(tensor(state, name, shape, torch.float32))
        self.mean.copy_(tensor(state, "mean", (f,), torch.float32))
        self.var.copy_(tensor(state, "var", (f,), torch.float32))
        self.steps = integer(state, "steps")

    def blend(self, others: list[StateDict]) -> None:
        """Average this ranker's parameters with other workers' (scale-out sharing: it is tiny)."""
        if not others:
            return
        with torch.no_grad():
            for name in ("linear", "w1", "b1", "w2", "mean", "var"):
                mine = getattr(self, name)
                theirs = [tensor(s, name, tuple(mine.shape), torch.float32) for s in others]
                total = mine.detach().clone()
                for other in theirs:
                    total += other.to(self.device)
                mine.copy_(total / (1 + len(theirs)))
