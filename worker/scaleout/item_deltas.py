"""What a worker learned about items since its last sync, and folding in what others learned.

Every worker keeps a full copy of the item side (item rows with their bias,
Adagrad sums, context rows). Each learns from its own users' clicks, so the
copies would drift apart; instead each periodically sends the *change* of
every row it touched since its last sync and adds the others' changes to its
own rows. With every row starting from the same value (`models.seeded`), each
copy is then `init + the sum of every worker's changes`: the same values on
every worker once all deltas have arrived (sums commute), whatever the order.

The bias column holds `learned bias + beta * L` (the popularity prior). `L`
is folded from clicks, not from deltas: a sent delta carries the learned part
alone (the change of `beta * L` subtracted), and the clicks travel beside it
as masses that the receiver folds into its own prior, so the cold-start list
counts every worker's clicks. Transition pairs travel by id beside the
deltas (`worker.scaleout.transitions`) and are added to the receiver's rings.

`base` is each row's value at the last sync (plus the deltas folded in since):
`weight - base` is what this worker has not sent yet. A row's base is tied to
the id it was taken for; a row reused by another id gets that id's seeded
start as its base. No I/O here: arrays in, arrays out; the learner's tables and
prior are read and changed through their own methods (`gather`, `add`,
`log_mass_of`, `fold_clicks`), and the base grows by `models.growth`'s rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from models.growth import grown_capacity
from models.learner import OnlineLearner
from models.prior import FLOOR
from models.seeded import seeded_normal


@dataclass(frozen=True)
class ItemDelta:
    """Changes of some item rows, by id, and the clicks (masses) behind the prior's change."""

    ids: list[str]
    weight: npt.NDArray[np.float32]  # (n, dim + 1): item row change, learned bias only
    grad_sq: npt.NDArray[np.float32]  # (n, 2)
    context: npt.NDArray[np.float32]  # (n, dim + 1), or (n, 0) without recent items
    context_grad_sq: npt.NDArray[np.float32]  # (n, 2), or (n, 0)
    click_ids: list[str]
    click_mass: npt.NDArray[np.float64]
    clock: float  # the sender's prior clock when it sent this (time or events)
    events: int  # events behind the clicks (an events clock advances by this many)


class ItemSync:
    """Tracks unsent item changes of one learner and applies other workers' deltas to it."""

    def __init__(self, learner: OnlineLearner, max_rows: int | None = None) -> None:
        """Start with nothing unsent: the learner's current rows are the base.

        `max_rows` is the item row cap: the base never allocates past it.
        """
        self.learner = learner
        self.max_rows = max_rows
        width = learner.config.dim + 1
        device = learner.device
        self._width = width
        self._base_ids: npt.NDArray[np.object_] = np.empty(0, dtype=object)
        self._base = torch.zeros(0, width, device=device)
        self._base_g = torch.zeros(0, 2, device=device)
        self._base_c = torch.zeros(0, width, device=device)
        self._base_cg = torch.zeros(0, 2, device=device)
        self._base_l = torch.zeros(0, dtype=torch.float64, device=device)
        self._dirty = torch.zeros(0, dtype=torch.bool, device=device)
        self._clicks: dict[str, float] = {}
        self._events = 0
        self._grow(learner.items.extent)
        rows = np.arange(learner.items.extent)
        self._take_base(rows, learner.items.ids_of(rows))

    @property
    def _context_on(self) -> bool:
        return bool(self.learner.config.recent_items)

    def _grow(self, rows: int) -> None:
        have = int(self._dirty.shape[0])
        if rows <= have:
            return
        size = grown_capacity(have, rows, self.max_rows)

        def grown(old: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
            new = torch.full((size, *old.shape[1:]), fill, dtype=old.dtype, device=old.device)
            new[:have] = old
            return new

        self._base, self._base_g = grown(self._base), grown(self._base_g)
        self._base_c, self._base_cg = grown(self._base_c), grown(self._base_cg)
        self._base_l, self._dirty = grown(self._base_l, FLOOR), grown(self._dirty)
        ids = np.empty(size, dtype=object)
        ids[:have] = self._base_ids
        self._base_ids = ids

    def _take_base(self, rows: npt.NDArray[np.int64], ids: npt.NDArray[np.object_]) -> None:
        """The base of `rows` becomes their current value, for the ids they hold now."""
        if rows.size == 0:
            return
        learner, index = self.learner, torch.from_numpy(rows).to(self.learner.device)
        self._base[index], self._base_g[index] = learner.item_table.gather(index)
        if self._context_on:
            self._base_c[index], self._base_cg[index] = learner.context_table.gather(index)
        if learner.config.popularity_weight:
            self._base_l[index] = learner.prior.log_mass_of(index)
        self._base_ids[rows] = ids

    def _rebase_reused(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.object_]:
        """Rows whose base was taken for another id get that row's seeded start as base."""
        self._grow(self.learner.items.extent)
        ids = self.learner.items.ids_of(rows)
        stale = np.flatnonzero(self._base_ids[rows] != ids)
        if stale.size:
            self._seed_base(rows[stale], ids[stale])
        return ids

    def _starts(self, ids: npt.NDArray[np.object_]) -> tuple[torch.Tensor, torch.Tensor]:
        """The seeded start of `ids`' item rows and context rows (the same on every worker)."""
        cfg, device = self.learner.config, self.learner.device
        start = torch.from_numpy(seeded_normal(list(ids), self._width, salt=1, seed=cfg.seed))
        start = start.to(device).mul_(cfg.init_std)
        start[:, -1] = cfg.popularity_weight * FLOOR if cfg.popularity_weight else 0.0
        context = torch.zeros(len(ids), self._width, device=device)
        if self._context_on:
            context = torch.from_numpy(seeded_normal(list(ids), self._width, salt=2, seed=cfg.seed))
            context = context.to(device).mul_(cfg.init_std)
            context[:, -1] = 0.0
        return start, context

    def _seed_base(self, rows: npt.NDArray[np.int64], ids: npt.NDArray[np.object_]) -> None:
        index = torch.from_numpy(rows).to(self.learner.device)
        start, context = self._starts(ids)
        self._base[index], self._base_g[index] = start, 0.0
        if self._context_on:
            self._base_c[index], self._base_cg[index] = context, 0.0
        self._base_l[index] = FLOOR
        self._base_ids[rows] = ids

    def snapshot(self) -> tuple[npt.NDArray[np.int64], ItemDelta]:
        """Every live row's agreed value as one delta from its seeded start; and those rows.

        The agreed value is the base (every change sent, every delta folded in),
        never this worker's unsent changes: a new worker that applies it to fresh
        rows holds what the feed up to now says, and folds the feed from here on.
        Clicks go as each row's mass decayed to the prior's clock (a constant
        shift of every item's `L` on the receiver, which no ranking sees).
        """
        learner = self.learner
        extent = learner.items.extent
        self._grow(extent)
        rows = np.flatnonzero(learner.items.live_mask()[:extent]).astype(np.int64)
        ids = self._rebase_reused(rows)
        index = torch.from_numpy(rows).to(learner.device)
        start, context_start = self._starts(ids)
        weight = self._base[index] - start
        beta = learner.config.popularity_weight
        if beta:  # the learned part of the bias only: the receiver's prior adds beta * L
            weight[:, -1] -= (beta * (self._base_l[index] - FLOOR)).to(weight.dtype)
        if self._context_on:
            context = (self._base_c[index] - context_start).cpu().numpy()
            context_g = self._base_cg[index].cpu().numpy()
        else:
            context = np.zeros((rows.size, 0), np.float32)
            context_g = np.zeros((rows.size, 0), np.float32)
        prior = learner.prior
        clock = prior.clock if math.isfinite(prior.clock) else 0.0
        clicked = np.zeros(rows.size, dtype=bool)
        mass = np.zeros(0)
        if beta and math.isfinite(prior.clock):
            log_mass = self._base_l[index].cpu().numpy()
            clicked = log_mass > FLOOR
            mass = prior.decayed(log_mass[clicked])
        return rows, ItemDelta(
            ids=[str(i) for i in ids],
            weight=weight.cpu().numpy(),
            grad_sq=self._base_g[index].cpu().numpy(),
            context=context,
            context_grad_sq=context_g,
            click_ids=[str(i) for i in ids[clicked]],
            click_mass=mass.astype(np.float64),
            clock=clock,
            events=0,
        )

    def mark(self, rows: torch.Tensor, clicked: Sequence[str], weights: Sequence[float]) -> None:
        """Note item rows a batch changed and the clicks it folded into the prior."""
        self._grow(self.learner.items.extent)
        if rows.numel():
            self._dirty[rows.to(self._dirty.device)] = True
        clicks = self._clicks
        for item, weight in zip(clicked, weights, strict=True):
            clicks[item] = clicks.get(item, 0.0) + float(weight)
        self._events += len(clicked)

    @property
    def pending(self) -> bool:
        """Whether anything learned here has not been sent yet."""
        return bool(self._clicks) or bool(self._dirty.any())

    def take(self) -> ItemDelta:
        """What changed since the last `take`, as a delta by id; the change counts as sent."""
        learner = self.learner
        self._grow(learner.items.extent)
        live = torch.from_numpy(learner.items.live_mask().copy()).to(learner.device)
        extent = learner.items.extent
        rows_t = torch.nonzero(self._dirty[:extent] & live).flatten()
        self._dirty[:] = False
        rows = rows_t.cpu().numpy().astype(np.int64)
        ids = self._rebase_reused(rows)
        weight, grad_sq = learner.item_table.gather(rows_t)
        weight, grad_sq = weight - self._base[rows_t], grad_sq - self._base_g[rows_t]
        if learner.config.popularity_weight:
            mass = learner.prior.log_mass_of(rows_t) - self._base_l[rows_t]
            weight[:, -1] -= (learner.config.popularity_weight * mass).to(weight.dtype)
        if self._context_on:
            context, context_g = learner.context_table.gather(rows_t)
            context, context_g = context - self._base_c[rows_t], context_g - self._base_cg[rows_t]
        else:
            context = weight.new_zeros(rows.size, 0)
            context_g = weight.new_zeros(rows.size, 0)
        self._take_base(rows, ids)
        clicks, self._clicks = self._clicks, {}
        events, self._events = self._events, 0
        clock = learner.prior.clock
        return ItemDelta(
            ids=[str(i) for i in ids],
            weight=weight.cpu().numpy(),
            grad_sq=grad_sq.cpu().numpy(),
            context=context.cpu().numpy(),
            context_grad_sq=context_g.cpu().numpy(),
            click_ids=list(clicks),
            click_mass=np.fromiter(clicks.values(), dtype=np.float64, count=len(clicks)),
            clock=clock if math.isfinite(clock) else 0.0,
            events=events,
        )

    def apply(
        self, delta: ItemDelta, rows: npt.NDArray[np.int64], click_rows: npt.NDArray[np.int64]
    ) -> torch.Tensor:
        """Add another worker's delta (its ids already given local `rows`, `-1`: skip).

        Returns the item rows whose values changed, for the index to refresh.
        """
        learner, device = self.learner, self.learner.device
        self._grow(learner.items.extent)
        keep = np.flatnonzero(rows >= 0)
        rows = rows[keep]
        self._rebase_reused(rows)
        index = torch.from_numpy(rows).to(device)
        changed = [index]
        if rows.size:
            weight = torch.from_numpy(delta.weight[keep]).to(device)
            grad_sq = torch.from_numpy(delta.grad_sq[keep]).to(device)
            learner.item_table.add(index, weight, grad_sq)
            self._base.index_add_(0, index, weight)
            self._base_g.index_add_(0, index, grad_sq)
            if self._context_on and delta.context.shape[1]:
                context = torch.from_numpy(delta.context[keep]).to(device)
                context_g = torch.from_numpy(delta.context_grad_sq[keep]).to(device)
                learner.context_table.add(index, context, context_g)
                self._base_c.index_add_(0, index, context)
                self._base_cg.index_add_(0, index, context_g)
        changed.append(self._fold_clicks(delta, click_rows))
        unique: torch.Tensor = torch.unique(torch.cat(changed))
        return unique

    def _fold_clicks(self, delta: ItemDelta, click_rows: npt.NDArray[np.int64]) -> torch.Tensor:
        """Fold another worker's clicks into this prior (and its change into the bias column)."""
        learner, device = self.learner, self.learner.device
        beta = learner.config.popularity_weight
        keep = click_rows >= 0
        if not beta or not keep.any():
            return torch.empty(0, dtype=torch.int64, device=device)
        prior = learner.prior
        items = torch.from_numpy(click_rows[keep]).to(device)
        mass = torch.from_numpy(delta.click_mass[keep]).to(device)
        if learner.config.popularity_clock == "events":
            base = prior.clock if math.isfinite(prior.clock) else 0.0
            now = base + delta.events
        else:
            now = delta.clock
        return learner.fold_clicks(items, mass, now)
