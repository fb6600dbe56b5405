"""What one step of the online learner did, left on the device until the caller reads it."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LearnStats:
    """What one update did, for the caller to log or export.

    The step leaves its scalars on the device (reading one is a host sync), so a
    caller reads them once, after the batch: `read()` fetches both in one copy.
    """

    events: int
    loss_value: torch.Tensor  # 0-dim, on the device: the batch's weighted loss
    applied_flag: torch.Tensor  # 0-dim bool: False when the step was refused (non-finite)
    changed: torch.Tensor  # item rows the step may have changed (repeats allowed)
    # context rows it may have changed (repeats allowed): item sharing sends them on
    context_rows: torch.Tensor

    def read(self) -> tuple[float, bool]:
        """`(loss, applied)`, in one device-to-host copy."""
        loss, applied = torch.stack([self.loss_value.float(), self.applied_flag.float()]).tolist()
        return loss, applied > 0

    @property
    def loss(self) -> float:
        """The batch's loss (a host sync on a device)."""
        return self.read()[0]

    @property
    def applied(self) -> bool:
        """Whether the step was applied (a host sync on a device)."""
        return self.read()[1]

    @property
    def item_rows(self) -> torch.Tensor:
        """Distinct item rows the step changed (a `unique`: a host sync on a device)."""
        rows: torch.Tensor = torch.unique(self.changed)
        return rows
