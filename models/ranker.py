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
    replay: int = 4096  # recent clicks kept (positive + sampled candidates), learned again
    sampled: int = 32  # candidates kept per click: the positive and this many - 1 others
    minibatch: int = 512  # clicks drawn from the replay per step
    stats_decay: float = 0.999  # running mean/variance decay per training batch
    l2: float = 1e-5
    seed: int = 0

    def __post_init__(self) -> None:
        """Reject values that would make the update meaningless."""
        if self.hidden < 0:
            raise ValueError(f"hidden must be >= 0, got {self.hidden}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.replay < 1 or self.sampled < 2 or self.minibatch < 1:  # noqa: PLR2004
            raise ValueError("replay and minibatch must be >= 1 and sampled >= 2")
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
        # Adam's moments, stepped by hand with a host-side step count: `torch.optim.Adam`
        # keeps its count in a tensor and reads it back every step.
        self._moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.params]
        self._adam_steps = 0
        self.mean = torch.zeros(features, device=device)
        self.var = torch.ones(features, device=device)
        self.steps = 0
        # The replay: each click's positive in column 0 beside sampled other candidates.
        size, width = config.replay, config.sampled
        self._replay = torch.zeros(size, width, features, device=device)
        self._replay_valid = torch.zeros(size, width, dtype=torch.bool, device=device)
        self._written = 0
        self._draw = torch.Generator(device=device)
        self._draw.manual_seed(config.seed + 1)

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """`[users, candidates]` scores of `[users, candidates, features]` (no gradient).

        The standardisation is folded into the weights (`(f - m) s @ w = f @ (s w) - m s @ w`),
        so the features are read by one matrix product and never copied.
        """
        with torch.no_grad():
            scale = torch.rsqrt(self.var + 1e-6)
            weights = self.linear.unsqueeze(1)
            bias = torch.zeros(1, device=self.device)
            if self.config.hidden:
                weights = torch.cat([weights, self.w1], 1)
                bias = torch.cat([bias, self.b1])
            bias = bias - (self.mean * scale) @ weights
            weights = weights * scale.unsqueeze(1)
            planes = features.permute(2, 0, 1)
            if planes.is_contiguous():  # held feature-major (`TwoStage.candidates`)
                # one unit per output row: 2.6 ms over 127,000 candidates with 23 inputs and
                # 17 outputs on a CPU, where reading the planes transposed took 4.5
                both = torch.addmm(bias.unsqueeze(1), weights.T, planes.view(planes.shape[0], -1))
                out = both[0]
                if self.config.hidden:
                    out = torch.addmv(out, both[1:].clamp_(min=0).T, self.w2)
                return out.view(features.shape[:-1])
            flat = features.reshape(-1, features.shape[-1])
            both = torch.addmm(bias, flat, weights)
            out = both[:, 0]
            if self.config.hidden:
                out = torch.addmv(out, both[:, 1:].clamp_(min=0), self.w2)
            return out.view(features.shape[:-1])

    def _forward(self, features: torch.Tensor) -> torch.Tensor:
        x = (features - self.mean) * torch.rsqrt(self.var + 1e-6)
        out = x @ self.linear
        if self.config.hidden:
            out = out + torch.relu(x @ self.w1 + self.b1) @ self.w2
        return out

    def fit(
        self, features: torch.Tensor, valid: torch.Tensor, positive: torch.Tensor
    ) -> RankerStats:
        """Keep this batch's clicks in the replay, then one Adam step on a minibatch of it.

        `positive[n]` is the click's column among its candidates, `-1` if absent: such
        a click teaches nothing here (the sources' recall is measured apart). Each kept
        click is its positive and `sampled - 1` other candidates drawn at random (a
        sampled softmax); a step draws from recent clicks, not the batch alone, so a
        small batch does not swing the weights.
        """
        events = int(features.shape[0])
        covered = positive >= 0
        zero = torch.zeros((), device=self.device)
        if events == 0:
            return RankerStats(0, zero, zero)
        self._follow(features, valid)
        self._keep(features, valid, positive)
        return RankerStats(events, covered.sum(), self._replay_step())

    def _replay_step(self) -> torch.Tensor:
        """One Adam step on a minibatch drawn from the replay; its loss (not read back)."""
        held = min(self._written, self.config.replay)
        draw = (self.config.minibatch,)
        pick = torch.randint(0, held, draw, generator=self._draw, device=self.device)
        batch, batch_valid = self._replay[pick], self._replay_valid[pick]
        logits = self._forward(batch).masked_fill(~batch_valid, float("-inf"))
        log_p = torch.log_softmax(logits, dim=1)[:, 0]
        kept = batch_valid[:, 0] & torch.isfinite(log_p)
        loss = -torch.where(kept, log_p, 0.0).sum() / kept.sum().clamp(min=1)
        penalty = self.config.l2 * sum((p * p).sum() for p in self.params)
        grads = torch.autograd.grad(loss + penalty, self.params)
        self._adam_step(grads)
        self.steps += 1
        return loss.detach()

    def _adam_step(self, grads: tuple[torch.Tensor, ...]) -> None:
        """One Adam update (betas 0.9 / 0.999, eps 1e-8, as `torch.optim.Adam`), no read-back."""
        beta1, beta2 = 0.9, 0.999
        self._adam_steps += 1
        t = self._adam_steps
        step_size = self.config.learning_rate / (1 - beta1**t)
        correction = (1 - beta2**t) ** 0.5
        with torch.no_grad():
            for param, grad, (mean, square) in zip(self.params, grads, self._moments, strict=True):
                mean.mul_(beta1).add_(grad, alpha=1 - beta1)
                square.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (square.sqrt() / correction).add_(1e-8)
                param.addcdiv_(mean, denom, value=-step_size)

    def _keep(self, features: torch.Tensor, valid: torch.Tensor, positive: torch.Tensor) -> None:
        """Write each click's positive and sampled other candidates into the replay ring."""
        events, width = features.shape[0], self.config.sampled
        covered = positive >= 0
        others = torch.rand(valid.shape, generator=self._draw, device=self.device)
        others = others.masked_fill(~valid, -1.0)
        others.scatter_(1, positive.clamp(min=0).unsqueeze(1), -1.0)  # not the positive again
        take = min(width - 1, int(valid.shape[1]))
        drawn = others.topk(take, dim=1)
        columns = torch.cat([positive.clamp(min=0).unsqueeze(1), drawn.indices], 1)
        kept_valid = torch.cat([covered.unsqueeze(1), drawn.values >= 0], 1)
        gathered = features.gather(1, columns.unsqueeze(2).expand(-1, -1, features.shape[2]))
        if take < width - 1:
            pad = width - 1 - take
            gathered = torch.nn.functional.pad(gathered, (0, 0, 0, pad))
            kept_valid = torch.nn.functional.pad(kept_valid, (0, pad))
        slots = (self._written + torch.arange(events, device=self.device)) % self.config.replay
        self._replay[slots] = gathered
        self._replay_valid[slots] = kept_valid
        self._written += events

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
        self._moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.params]
        self._adam_steps = 0

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
