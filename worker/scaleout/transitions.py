"""Transition pairs shared between workers: by id, since rows differ from worker to worker.

Each worker's successor rings and co-visits would otherwise hold only its own
users' pairs. The learner's transition term hands every learned step's pairs
to a watcher (`TransitionTerm.watch`); `TransitionSync` keeps them, turns them
into ids right after the batch that added them (`capture`, while their rows
still hold those items), and adds the pairs others sent as if seen here, so
every worker's ring of an item holds the same successors once all pairs
arrived (ring order may differ). No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from models.learner import OnlineLearner


@dataclass(frozen=True)
class TransitionPairs:
    """Transition pairs by id: `ids[before[n]] -> ids[after[n]]` with `weight[n]`.

    Ids, not rows: the same item has different rows on different workers.
    """

    ids: list[str]
    before: npt.NDArray[np.int32]  # index into ids
    after: npt.NDArray[np.int32]
    weight: npt.NDArray[np.float32]


def split_pairs(pairs: TransitionPairs, max_pairs: int) -> list[TransitionPairs]:
    """Pairs cut into pieces of at most `max_pairs`, each with only the ids it uses."""
    if len(pairs.before) <= max_pairs:
        return [pairs]
    ids = np.asarray(pairs.ids, dtype=object)
    pieces = []
    for start in range(0, len(pairs.before), max_pairs):
        end = start + max_pairs
        both = np.concatenate([pairs.before[start:end], pairs.after[start:end]])
        used, index = np.unique(both, return_inverse=True)
        half = len(both) // 2
        pieces.append(
            TransitionPairs(
                ids=[str(i) for i in ids[used]],
                before=index[:half].astype(np.int32),
                after=index[half:].astype(np.int32),
                weight=pairs.weight[start:end],
            )
        )
    return pieces


class TransitionSync:
    """Keeps the pairs one learner's steps add, as ids until taken, and adds others' pairs."""

    def __init__(self, learner: OnlineLearner) -> None:
        """Watch `learner`'s transition term (which it must have) for the pairs each step adds."""
        if learner.transition is None:
            raise ValueError("transition pairs need a learner with the transition term on")
        self.learner = learner
        self._learned: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # item rows
        self._ids: list[npt.NDArray[np.object_]] = []  # (2, n) before and after ids per batch
        self._weights: list[npt.NDArray[np.float32]] = []
        learner.transition.watch(self._keep)

    def _keep(self, before: torch.Tensor, after: torch.Tensor, weight: torch.Tensor) -> None:
        """A learned step's pairs, padded, as the term hands them over (kept on the device)."""
        self._learned.append((before, after, weight))

    @property
    def pending(self) -> bool:
        """Whether pairs learned here have not been taken yet."""
        return bool(self._weights)

    def capture(self) -> None:
        """Turn the steps' new pairs into ids (call after each batch, before rows move)."""
        if not self._learned:
            return
        learned, self._learned = self._learned, []
        before, after, weight = (torch.cat(part) for part in zip(*learned, strict=True))
        real = before >= 0  # steps pad their pairs; the feed sends only real ones
        before, after, weight = before[real], after[real], weight[real]
        ids = self.learner.items.ids_of(torch.stack([before, after]).cpu().numpy())
        held = (ids != None).all(0)  # noqa: E711 (elementwise): a hole has no id to send
        self._ids.append(ids[:, held])
        self._weights.append(weight.cpu().numpy().astype(np.float32)[held])

    def take(self) -> TransitionPairs:
        """The pairs captured since the last take, with one id list; they count as sent."""
        if not self._weights:
            empty = np.zeros(0, np.int32)
            return TransitionPairs([], empty, empty, np.zeros(0, np.float32))
        ids = np.concatenate(self._ids, axis=1)
        weight = np.concatenate(self._weights)
        self._ids, self._weights = [], []
        used, index = np.unique(ids.ravel(), return_inverse=True)
        index = index.reshape(ids.shape).astype(np.int32)
        return TransitionPairs([str(i) for i in used], index[0], index[1], weight)

    def apply(self, pairs: TransitionPairs, rows: npt.NDArray[np.int64]) -> None:
        """Add another worker's pairs (their ids already given local `rows`, `-1`: skip)."""
        device = self.learner.device
        before, after = rows[pairs.before], rows[pairs.after]
        keep = (before >= 0) & (after >= 0)
        if not keep.any():
            return
        self.learner.add_transitions(
            torch.from_numpy(before[keep]).to(device),
            torch.from_numpy(after[keep]).to(device),
            torch.from_numpy(pairs.weight[keep]).to(device),
        )
