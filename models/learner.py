"""The online learner: matrix factorisation for implicit feedback, one vectorised step per batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.errors import ModelError, ModelFitError
from models.idmap import IdMap
from models.table import EmbeddingTable


@dataclass(frozen=True)
class LearnerConfig:
    """Hyper-parameters of the online learner."""

    dim: int = 64
    learning_rate: float = 0.3
    negatives: int = 128
    l2: float = 1e-4
    init_std: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        """Reject values that would make the update meaningless."""
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.negatives < 1:
            raise ValueError(f"negatives must be >= 1, got {self.negatives}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")


@dataclass(frozen=True)
class LearnStats:
    """What one update did, for the caller to log or export."""

    events: int
    loss: float
    item_rows: torch.Tensor  # distinct item rows the step changed (positives and negatives)


class OnlineLearner:
    """BPR matrix factorisation updated online, with an item bias folded into the vectors.

    Users and items are rows of `dim + 1` columns: the user's last column is a
    constant 1 and the item's last column is its learned bias, so a plain inner
    product scores `u·v + b_item` and an inner-product index can search the
    item table as it is. Each batch samples `negatives` uniform items that
    every event in it is contrasted with (shared negatives turn the update
    into GEMMs), takes the BPR gradient in closed form (no autograd graph)
    and applies one row-wise Adagrad step to every touched row at once.
    """

    def __init__(self, config: LearnerConfig, device: torch.device) -> None:
        """Create an empty model on `device`."""
        self.config = config
        self.device = device
        self.users = IdMap()
        self.items = IdMap()
        self._generator = torch.Generator(device=device)
        self._generator.manual_seed(config.seed)
        width = config.dim + 1
        self.user_table = EmbeddingTable(
            width,
            device,
            init_std=config.init_std,
            generator=self._generator,
            constant_last=1.0,
        )
        self.item_table = EmbeddingTable(
            width, device, init_std=config.init_std, generator=self._generator
        )
        self.steps = 0

    def sync_rows(self) -> None:
        """Give every row the maps handed out a table row (call after `rows_for`)."""
        self.user_table.ensure_rows(self.users.extent)
        self.item_table.ensure_rows(self.items.extent)

    def reset_rows(self, users: torch.Tensor, items: torch.Tensor) -> None:
        """Make user and item rows fresh (rows reused for new ids): new values, no state."""
        self.sync_rows()
        self.user_table.reset(users)
        self.item_table.reset(items)

    def learn(self, users: torch.Tensor, items: torch.Tensor, weights: torch.Tensor) -> LearnStats:
        """Take one step on a batch of positive (user row, item row, weight) events."""
        self.sync_rows()
        n = users.numel()
        if n == 0:
            return LearnStats(events=0, loss=0.0, item_rows=items.new_empty(0))
        if int(users.max()) >= self.user_table.rows or int(items.max()) >= self.item_table.rows:
            raise ModelError("event rows beyond the tables: map ids with rows_for first")
        cfg = self.config
        if cfg.negatives >= self.item_table.rows:  # a small catalogue: contrast with all of it
            negatives = torch.arange(self.item_table.rows, device=self.device)
        else:
            negatives = torch.randint(
                0,
                self.item_table.rows,
                (cfg.negatives,),
                generator=self._generator,
                device=self.device,
            )
        user_vec = self.user_table.weight[users]
        pos_vec = self.item_table.weight[items]
        neg_vec = self.item_table.weight[negatives]
        # Every event is contrasted with the batch's shared negatives: two GEMMs, no gathers
        # of (events x negatives x dim).
        margin = (user_vec * pos_vec).sum(1, keepdim=True) - user_vec @ neg_vec.T
        # d/dmargin of softplus(-margin), averaged over the negatives, weighted per event.
        coef = -torch.sigmoid(-margin) * (weights.unsqueeze(1) / negatives.numel())
        coef_sum = coef.sum(1, keepdim=True)
        grad_user = coef_sum * pos_vec - coef @ neg_vec + cfg.l2 * user_vec
        grad_pos = coef_sum * user_vec + cfg.l2 * pos_vec
        grad_neg = -(coef.T @ user_vec) + cfg.l2 * neg_vec
        loss = (F.softplus(-margin).mean(1) * weights).sum() / weights.sum()
        if not torch.isfinite(loss):
            raise ModelFitError(f"non-finite loss at step {self.steps}; batch not applied")
        self.user_table.apply_gradients(users, grad_user, cfg.learning_rate)
        item_rows = self.item_table.apply_gradients(
            torch.cat([items, negatives]),
            torch.cat([grad_pos, grad_neg]),
            cfg.learning_rate,
        )
        self.steps += 1
        return LearnStats(events=n, loss=float(loss), item_rows=item_rows)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """Query vectors of user rows (last column 1, to pick up the item bias)."""
        return self.user_table.weight[users]

    def item_vectors(self) -> torch.Tensor:
        """The live item matrix, one row per known item, as the index searches it."""
        return self.item_table.view()

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of (user row, item row) pairs."""
        return (self.user_table.weight[users] * self.item_table.weight[items]).sum(1)
