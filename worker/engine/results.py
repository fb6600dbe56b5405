"""What the Engine hands the loop: what learning a batch did, and the lists it ranked."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class Learned:
    """What learning one batch did."""

    loss: float  # NaN when the step was refused (non-finite), the lists still go out
    touched: torch.Tensor  # distinct user rows of the batch, on the learner's device
    unlearned: int = 0  # events left out: no user or item row, or a banned item
    evictions: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, cause) -> rows
    # scale-out hook: item rows this batch changed (learned, reset), for the item sync to send
    changed_items: torch.Tensor | None = None
    # user rows whose last click became `idle_after_s` old with this batch's clock: between
    # sessions now, so their list is ranked (and published) again, as such a user's is
    resting: torch.Tensor | None = None

    @property
    def to_rank(self) -> torch.Tensor:
        """The user rows whose lists this batch changes: the touched, then the resting."""
        if self.resting is None or not self.resting.numel():
            return self.touched
        return torch.cat([self.touched, self.resting])


@dataclass(frozen=True)
class Ranked:
    """Top-k item rows per user row, on the CPU; `-1` pads lists shorter than k."""

    user_rows: np.ndarray
    item_rows: np.ndarray
    scores: np.ndarray
    last_ts: np.ndarray | None = None  # each user's newest event time, read back beside them

    def finite(self) -> bool:
        """Whether every listed score is a finite number (a broken model gives NaN or inf)."""
        return bool(np.isfinite(self.scores[self.item_rows >= 0]).all())
