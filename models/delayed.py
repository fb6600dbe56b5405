"""Delayed labels: candidate sets kept from earlier, labelled by the clicks that come later.

A list is often read hours after it is written, so what matters is not only
the next click but any later one. To learn that, a bounded store keeps, for a
sample of users, the candidate set (rows and features) they had at some batch;
each later click of theirs on one of those candidates is a positive for that
old set. The store is a fixed ring of `slots` sets: an entry is replaced once
it has taught `uses` clicks, or when its slot comes round again and it is at
least `min_age_s` old. Without that floor a ring refilled every batch turns
over in about a second at 1k events/s, before most users click again, and
then teaches almost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Labels:
    """Later clicks on kept sets: each set's features and valid slots, the clicked column.

    `positive` is the clicked item's column in its set (`-1`: not one of its
    candidates); `events` indexes the clicks used; `ages` counts, per click, the
    clicks its set has been labelled by so far, this one included (1: the first
    click after the set was kept); `slots` names each click's set (its slot in
    the ring) until `DelayedSets.ended` says the set is gone.
    """

    features: torch.Tensor
    valid: torch.Tensor
    positive: torch.Tensor
    events: torch.Tensor
    ages: torch.Tensor
    slots: torch.Tensor


class DelayedSets:
    """A ring of `slots` users' earlier candidate sets, looked up by user row."""

    def __init__(
        self,
        slots: int,
        uses: int,
        device: torch.device,
        per_batch: int = 0,
        min_age_s: float = 0.0,
        track_ended: bool = False,
    ) -> None:
        """Room for `slots` sets; each teaches at most `uses` later clicks.

        At most `per_batch` new sets are kept per batch (default `slots // 32`), so the
        ring holds sets of many ages; a set is replaced before it is spent only once
        it is `min_age_s` old (by the clock `store` is given). `track_ended`: remember
        which sets ended, for `ended()` (whoever asks must ask after every batch).
        """
        if slots < 1 or uses < 1:
            raise ValueError(f"slots and uses must be >= 1, got {slots}, {uses}")
        self.slots = slots
        self.uses = uses
        self.device = device
        self.rows: torch.Tensor | None = None  # [slots, width] item rows, -1 padded
        self.features: torch.Tensor | None = None  # [slots, width, features] (float16)
        self._owner = np.full(slots, -1, dtype=np.int64)
        self._left = np.zeros(slots, dtype=np.int64)
        self._kept_at = np.zeros(slots, dtype=np.float64)
        self.min_age_s = min_age_s
        self._slot_of: dict[int, int] = {}
        self._ended: list[int] = []  # slots whose set ended since the last `ended()`
        self.track_ended = track_ended
        self._next = 0
        self.per_batch = per_batch or max(1, slots // 32)

    def __len__(self) -> int:
        """Sets held."""
        return len(self._slot_of)

    def labelled(
        self, user_rows: np.ndarray, clicked: torch.Tensor, min_age: int = 0
    ) -> Labels | None:
        """The `Labels` of clicks whose user has an earlier set; None when no click has one.

        Clicks younger than `min_age` (their set's first clicks) still use the set up,
        but are not returned: what only later clicks teach need not gather the rest.
        """
        if self.rows is None or self.features is None:
            return None
        slots = np.array([self._slot_of.get(int(u), -1) for u in user_rows], dtype=np.int64)
        events = np.flatnonzero(slots >= 0)
        if events.size == 0:
            return None
        used = slots[events]
        ages = self.uses - self._left[used] + 1 + _earlier_repeats(used)
        np.subtract.at(self._left, used, 1)
        for slot in np.unique(used[self._left[used] <= 0]):  # spent: free for a fresh set
            self._free(int(slot))
        if min_age > 1:
            old = ages >= min_age
            if not old.any():
                return None
            used, ages, events = used[old], ages[old], events[old]
        # slots, ages and click positions go up as one copy
        index, found, picked = torch.from_numpy(np.stack([used, ages, events])).to(self.device)
        rows = self.rows[index]
        hit = rows == clicked[picked.to(clicked.device)].unsqueeze(1)
        positive = torch.where(hit.any(1), hit.int().argmax(1), -1)
        return Labels(self.features[index].float(), rows >= 0, positive, picked, found, index)

    def ended(self) -> np.ndarray:
        """Slots whose set was spent, forgotten or replaced since the last call."""
        ended, self._ended = np.unique(np.array(self._ended, dtype=np.int64)), []
        return ended

    def forget_users(self, user_rows: np.ndarray) -> None:
        """Rows handed to new users: their earlier owners' sets are not theirs."""
        for user in user_rows.tolist():
            if (slot := self._slot_of.get(int(user))) is not None:
                self._free(slot)

    def forget_items(self, item_rows: torch.Tensor) -> None:
        """Rows handed to new items: a kept set's old item there is no longer a candidate."""
        if self.rows is not None and item_rows.numel():
            gone = torch.isin(self.rows, item_rows.to(self.device))
            self.rows.masked_fill_(gone, -1)

    def store(
        self, user_rows: np.ndarray, rows: torch.Tensor, features: torch.Tensor, now: float = 0.0
    ) -> None:
        """Keep the sets of users who hold none yet, in the next slots free or old enough.

        Sets may come narrower or wider than those held (a CPU ranks only as many
        candidate slots as a batch's fullest user fills): the narrower are padded, and
        a wider one widens the ring, its sets kept.
        """
        held_rows, held_features, rows, features = self._widened(rows, features)
        first: dict[int, int] = {}
        for n, user in enumerate(user_rows.tolist()):
            if user not in self._slot_of:
                first.setdefault(user, n)
        ring = (np.arange(self.slots) + self._next) % self.slots
        open_ = (self._owner[ring] < 0) | (self._kept_at[ring] <= now - self.min_age_s)
        slots = ring[open_][: min(self.per_batch, len(first))].tolist()
        fresh = list(first.values())[: len(slots)]
        if not fresh:
            return
        self._next = (slots[-1] + 1) % self.slots
        for slot, n in zip(slots, fresh, strict=True):
            self._free(slot)
            user = int(user_rows[n])
            self._owner[slot], self._left[slot] = user, self.uses
            self._kept_at[slot] = now
            self._slot_of[user] = slot
        at = torch.tensor(slots, device=self.device)
        take = torch.tensor(fresh, device=rows.device)
        held_rows[at] = rows[take].to(self.device)
        held_features[at] = features[take].to(self.device, torch.float16)

    def _widened(
        self, rows: torch.Tensor, features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The ring's rows and features, widened to `rows`' width, and `rows`, `features` padded."""
        width = max(rows.shape[1], 0 if self.rows is None else self.rows.shape[1])
        if self.rows is None or self.features is None or self.rows.shape[1] < width:
            held_rows = torch.full((self.slots, width), -1, device=self.device)
            held = torch.zeros(
                self.slots, width, *features.shape[2:], dtype=torch.float16, device=self.device
            )
            if self.rows is not None and self.features is not None:
                held_rows[:, : self.rows.shape[1]] = self.rows
                held[:, : self.features.shape[1]] = self.features
            self.rows, self.features = held_rows, held
        pad = width - rows.shape[1]
        if pad:
            rows = torch.nn.functional.pad(rows, (0, pad), value=-1)
            features = torch.nn.functional.pad(features, (0, 0, 0, pad))
        return self.rows, self.features, rows, features

    def _free(self, slot: int) -> None:
        owner = int(self._owner[slot])
        if owner >= 0 and self._slot_of.get(owner) == slot:
            del self._slot_of[owner]
        if owner >= 0 and self.track_ended:
            self._ended.append(slot)
        self._owner[slot] = -1


def _earlier_repeats(values: np.ndarray) -> np.ndarray:
    """For each position, how many earlier positions hold the same value."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, values.size])
    repeats = np.empty_like(values)
    repeats[order] = np.arange(values.size) - np.repeat(starts, sizes)
    return repeats
