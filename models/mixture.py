"""A two-component mixture's weight, learned online by EM from the clicks it should have named.

A list scores `log((1 - t) p_a + t p_b)`. Which `t` serves best depends on the
stream: on ml-latest-small the user's taste (`b`) is worth less than on the
synthetic streams (docs/accuracy.md, "A taste share learned from the stream").
So `t` is estimated, not set: for each labelled click `y` the posterior
responsibility of `b`, `t p_b(y) / ((1 - t) p_a(y) + t p_b(y))`, is folded into
decayed sums, and `t` is their mean, shrunk towards the configured start. This is
online EM for mixture weights (Cappé and Moulines 2009), and it stays on the
device: no step reads a value back.
"""

from __future__ import annotations

import torch

from models.state import StateDict, number


class MixtureWeight:
    """The weight `t` of a mixture's second component, as a 0-dim device tensor."""

    SHARED = ("responsible", "labels")  # what `shared` sends

    def __init__(
        self,
        start: float,
        device: torch.device,
        *,
        memory: float = 20_000.0,
        prior: float = 500.0,
        most: float = 0.9,
    ) -> None:
        """Start at `start`; remember about `memory` labels; `prior` labels' worth of `start`.

        `most` caps `t`: the first component is the learned ranker, which must keep a say.
        """
        if not 0 <= start < 1:
            raise ValueError(f"a mixture weight must be in [0, 1), got {start}")
        self.start, self.most, self.prior = min(start, most), most, prior
        self.log_decay = -1.0 / memory  # per label
        self.device = device
        self.responsible = torch.zeros((), device=device)  # decayed sum of responsibilities
        self.labels = torch.zeros((), device=device)  # decayed count of labels
        self.value = torch.tensor(self.start, device=device)

    def learn(self, first: torch.Tensor, second: torch.Tensor, positive: torch.Tensor) -> None:
        """Fold in labelled clicks: each row's log-probabilities over its candidates.

        `first` and `second` are `[rows, n]` log-probabilities of the two components,
        `positive` `[rows]` the clicked column (`-1`: not among them, skipped). Rows
        where `second` holds no mass are skipped too: the mixture leaves them alone.
        """
        with torch.no_grad():
            column = positive.clamp(min=0).unsqueeze(1)
            a, b = first.gather(1, column).squeeze(1), second.gather(1, column).squeeze(1)
            counted = (positive >= 0) & torch.isfinite(second).any(1) & torch.isfinite(a)
            t = self.value.clamp(min=1e-6)
            mine = b + torch.log(t)
            mixed = torch.logaddexp(a + torch.log1p(-t), mine)
            responsibility = torch.exp(mine - mixed).nan_to_num(0.0) * counted
            n = counted.sum()
            keep = torch.exp(n * self.log_decay)  # a host scalar copied up would wait on a device
            self.responsible.mul_(keep).add_(responsibility.sum())
            self.labels.mul_(keep).add_(n)
            self._update()

    def _update(self) -> None:
        estimate = (self.responsible + self.prior * self.start) / (self.labels + self.prior)
        self.value = estimate.clamp(max=self.most)

    def state_dict(self) -> StateDict:
        """The decayed sums (the value follows from them)."""
        return {"responsible": float(self.responsible), "labels": float(self.labels)}

    def load_state_dict(self, state: StateDict) -> None:
        """Restore `state_dict()` output."""
        self.responsible.fill_(number(state, "responsible"))
        self.labels.fill_(number(state, "labels"))
        self._update()

    def shared(self) -> dict[str, torch.Tensor]:
        """The decayed sums as 0-dim host tensors, for other workers (`blend`)."""
        return {"responsible": self.responsible.cpu(), "labels": self.labels.cpu()}

    def blend(self, other: dict[str, torch.Tensor]) -> None:
        """Average another worker's sums into this one's: the share pools both workers' labels."""
        self.responsible.add_(other["responsible"].to(self.device)).mul_(0.5)
        self.labels.add_(other["labels"].to(self.device)).mul_(0.5)
        self._update()
