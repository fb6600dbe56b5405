"""Start the online learner from an offline model's vectors instead of from nothing.

Item vectors fill the item rows and, since a user's query adds the context vectors of
their recent items (FISM), the context rows too: a new user's first clicks then already
point at similar items, which is most of what a warm start can give on a stream whose
users are mostly new (README, "Warm start from an offline model", has the figures).
User vectors, when given, fill the user rows.

An offline factorisation splits the scale of a score between users and items at will
(ALS gives users far larger norms than items); when both sides are given, they are
rebalanced to equal mean norms first, which keeps every user-item score as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.learner import OnlineLearner
from models.vectors import VectorFileError, Vectors


@dataclass(frozen=True)
class Installed:
    """How many rows a warm start filled."""

    items: int
    users: int


def _balanced(vectors: Vectors) -> tuple[np.ndarray, np.ndarray | None]:
    items, users = vectors.item_vectors, vectors.user_vectors
    if users is None or not len(users) or not len(items):
        return items, users
    item_norm = float(np.linalg.norm(items, axis=1).mean())
    user_norm = float(np.linalg.norm(users, axis=1).mean())
    if item_norm == 0 or user_norm == 0:
        return items, users
    factor = np.float32(np.sqrt(user_norm / item_norm))
    return items * factor, users / factor


def install_vectors(
    learner: OnlineLearner, vectors: Vectors, seen_at: float | None = None
) -> Installed:
    """Give `vectors`' ids rows in `learner` and set them; the width must be the model's.

    With `seen_at`, each item also counts as clicked once then, so the popularity prior
    lets it into lists before its first live click (without, a never-clicked item ranks
    last whatever its vector, as a new one does).
    """
    dim = learner.config.dim
    if vectors.dim != dim:
        raise VectorFileError(f"vectors are {vectors.dim} wide, the model {dim}")
    item_vectors, user_vectors = _balanced(vectors)
    device = learner.device
    item_rows = torch.from_numpy(learner.items.rows_for(vectors.item_ids)).to(device)
    user_rows = None
    if vectors.user_ids is not None:
        user_rows = torch.from_numpy(learner.users.rows_for(vectors.user_ids)).to(device)
    learner.sync_rows()  # fresh rows: floor bias, zero users, random context
    values = torch.from_numpy(np.ascontiguousarray(item_vectors)).to(device)
    learner.item_table.weight[item_rows, :dim] = values
    if vectors.item_bias is not None:
        learner.item_table.weight[item_rows, dim] += torch.from_numpy(vectors.item_bias).to(device)
    if learner.config.recent_items:
        learner.context_table.weight[item_rows, :dim] = values
    if seen_at is not None:
        learner.count_clicks(item_rows, torch.ones(len(item_rows), device=device), seen_at)
    if user_rows is not None and user_vectors is not None:
        user_values = torch.from_numpy(np.ascontiguousarray(user_vectors)).to(device)
        learner.user_table.weight[user_rows, :dim] = user_values
    return Installed(items=len(item_rows), users=0 if user_rows is None else len(user_rows))


def export_vectors(learner: OnlineLearner) -> Vectors:
    """The live model's item (vector, bias) and user vectors, holes left out."""
    dim = learner.config.dim
    item_ids, item_rows = _live(learner.items.ids())
    user_ids, user_rows = _live(learner.users.ids())
    rows = torch.from_numpy(item_rows).to(learner.device)
    items = learner.item_table.weight[rows].cpu()
    bias = items[:, dim].double()
    if learner.config.popularity_weight:  # the column holds learned + beta * log popularity
        bias -= learner.config.popularity_weight * learner.prior.log_mass[rows].cpu()
    users = learner.user_table.weight[torch.from_numpy(user_rows).to(learner.device)].cpu()
    return Vectors(
        item_ids,
        items[:, :dim].numpy().copy(),
        bias.float().numpy(),
        user_ids,
        users[:, :dim].numpy().copy(),
    )


def _live(ids: list[str | None]) -> tuple[list[str], np.ndarray]:
    rows = [n for n, key in enumerate(ids) if key is not None]
    return [str(ids[n]) for n in rows], np.asarray(rows, dtype=np.int64)
