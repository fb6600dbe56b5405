"""The online learner: matrix factorisation for implicit feedback, one vectorised step per batch."""

from __future__ import annotations

import math

import numpy as np
import torch

from models.covisit import CoVisitation
from models.errors import ModelError, ModelFitError
from models.history import SeenHistory
from models.idmap import IdMap
from models.learn_stats import LearnStats
from models.learner_config import LearnerConfig
from models.learner_state import checked_parts
from models.prior import FLOOR, PopularityPrior
from models.seeded import seeded_normal
from models.state import StateDict, integer, part, prefixed
from models.table import EmbeddingTable
from models.transitions import ItemTransitions, TransitionTerm

__all__ = ["LearnStats", "LearnerConfig", "OnlineLearner"]  # the config and stats live apart


class OnlineLearner:
    """Matrix factorisation with a sampled-softmax loss, updated online, item bias folded in.

    Users and items are rows of `dim + 1` columns: the user's last column is a
    constant 1 and the item's last column is its learned bias, so a plain inner
    product scores `u·v + b_item` and an inner-product index can search the
    item table as it is. A user's query is their own row plus the sum of the
    context vectors of their last `recent_items` items over `N**recent_alpha`
    (FISM-style: a user is also the bag of what they just clicked, so a list
    follows a session before the user's row has learned anything). User rows
    start at zero, so a new user's list is the item-bias ranking: popularity.

    Those last items are read from `history`, the one ring of each user's
    clicks: the worker hands in its seen history (what lists exclude, usually
    far wider) and the learner reads its newest `recent_items` slots, so one
    ring, not two fed the same clicks, holds them. Built alone (tests,
    benchmarks) the learner keeps a ring of its own, `recent_items` wide.
    `learn` writes each step's clicks into it after the step has read it.

    Each batch samples `negatives` uniform items shared by all its events
    (GEMMs, no per-event gathers; a catalogue no larger than that is used
    whole), scores the positive against them with the log of the sampling
    rate subtracted (logQ correction, so the softmax estimates the full one
    over the catalogue), takes the softmax gradient in closed form and applies
    one row-wise Adagrad step to every touched row at once.
    """

    def __init__(
        self, config: LearnerConfig, device: torch.device, history: SeenHistory | None = None
    ) -> None:
        """Create an empty model on `device` that reads and writes `history` (or a ring of its own).

        The learner is the ring's one writer (`learn`); its other readers (exclusion,
        candidates, `recstream inspect`) only read it.
        """
        self.config = config
        self.device = device
        self.users = IdMap()
        self.items = IdMap()
        self._generator = torch.Generator(device=device)
        self._generator.manual_seed(config.seed)
        width = config.dim + 1
        self.user_table = EmbeddingTable(
            width, device, init_std=0.0, generator=self._generator, constant_last=1.0
        )
        self.item_table = EmbeddingTable(
            width,
            device,
            init_std=config.init_std,
            generator=self._generator,
            bias_decay=config.bias_decay,
        )
        self.context_table = EmbeddingTable(
            width, device, init_std=config.init_std, generator=self._generator, constant_last=0.0
        )
        if history is None:
            history = SeenHistory(max(1, config.recent_items), device)
        self.history = history
        # the query reads the newest `recent_items` clicks, as many as the ring holds
        self._recent = min(config.recent_items, self.history.length)
        self.prior = PopularityPrior(config.popularity_tau, device)
        window, decay = self._transition_window, config.transition_decay
        self.transition = (
            TransitionTerm(
                ItemTransitions(config.transition_slots, window, decay, device),
                CoVisitation(config.covisit_slots, config.covisit_half_life, device),
            )
            if config.transition_slots and self._recent
            else None
        )
        self.steps = 0

    def sync_rows(self) -> None:
        """Give every row the maps handed out a table row (call after `rows_for`)."""
        self.user_table.ensure_rows(self.users.extent)
        known = self.item_table.rows
        known_context = self.context_table.rows
        self.item_table.ensure_rows(self.items.extent)
        if self.config.popularity_weight and self.item_table.rows > known:
            self.prior.ensure_rows(self.item_table.rows)
        self.history.ensure_users(self.users.extent)
        if self.config.recent_items:
            self.context_table.ensure_rows(self.items.extent)
        start = min(known, known_context) if self.config.recent_items else known
        if self.item_table.rows > start:
            self._seed_items(torch.arange(start, self.item_table.rows, device=self.device))
        if self.transition is not None:
            self.transition.ensure_rows(self.items.extent)

    def cap_rows(self, max_users: int, max_items: int) -> None:
        """Never let any per-user or per-item state allocate past these row caps."""
        self.user_table.max_rows = max_users
        self.history.max_users = max_users
        self.item_table.max_rows = max_items
        self.context_table.max_rows = max_items
        self.prior.max_rows = max_items
        if self.transition is not None:
            self.transition.cap_rows(max_items)

    def reset_rows(self, users: torch.Tensor, items: torch.Tensor) -> None:
        """Make user and item rows fresh (rows reused for new ids): new values, no state."""
        self.sync_rows()
        self.user_table.reset(users)
        self.item_table.reset(items)
        if self.config.popularity_weight and items.numel():
            self.prior.reset(items)
        self.history.reset(users)
        if self.config.recent_items:
            self.context_table.reset(items)
        if items.numel():
            self._seed_items(items.to(self.device))
        if self.transition is not None:
            self.transition.reset(items)

    def _seed_items(self, rows: torch.Tensor) -> None:
        """Initial item and context rows from each item's id (`models.seeded`), not draw order.

        Workers that share items by deltas must start every item alike. The tables still
        drew their random rows (so the generator's later draws, the negatives, are as
        before); those rows are overwritten here.
        """
        ids = list(self.items.ids_of(rows.cpu().numpy()))
        cfg, width = self.config, self.config.dim + 1
        item = torch.from_numpy(seeded_normal(ids, width, salt=1, seed=cfg.seed)).to(self.device)
        item.mul_(cfg.init_std)
        # the bias column holds learned + beta * L, and a fresh item has L = FLOOR
        item[:, -1] = self._floor_bias if cfg.popularity_weight else 0.0
        self.item_table.weight[rows] = item
        if cfg.recent_items and self.context_table.rows >= self.item_table.rows:
            context = torch.from_numpy(seeded_normal(ids, width, salt=2, seed=cfg.seed))
            context = context.to(self.device).mul_(cfg.init_std)
            context[:, -1] = 0.0
            self.context_table.weight[rows] = context

    def state_dict(self) -> StateDict:
        """Everything learned, by part: id maps, tables, prior, transitions, steps.

        The config is not state (the learner is built from it first) and the
        random generator is not kept: a restored learner samples afresh. Nor is
        `history`: it is a part of its own, stored once beside the learner
        (a checkpoint's `history.`) and handed to the learner it restores.
        """
        items = self.items.extent
        state: StateDict = {"steps": self.steps}
        state |= prefixed("users", self.users.state_dict())
        state |= prefixed("items", self.items.state_dict())
        state |= prefixed("user_table", self.user_table.state_dict())
        state |= prefixed("item_table", self.item_table.state_dict())
        state |= prefixed("context_table", self.context_table.state_dict())
        if self.config.popularity_weight:
            state |= prefixed("prior", self.prior.state_dict(items))
        if self.transition is not None:
            state |= prefixed("transition", self.transition.state_dict(items))
        return state

    def load_state_dict(self, state: StateDict, *, strict: bool = True) -> None:
        """Restore `state_dict()` output of a learner with this config, part by part.

        Row counts are checked against the id maps before anything changes.
        With `strict=False` the parts older checkpoints lack (the recent-item
        context, transitions) start fresh, as on a new learner. The `recent.` ring
        older learners kept beside the seen history is ignored: the seen history,
        fed the same clicks, holds what it held (`history`).
        """
        present = checked_parts(state, self.config, self.transition is not None, strict=strict)
        self.steps = integer(state, "steps")
        self.users.load_state_dict(part(state, "users"))
        self.items.load_state_dict(part(state, "items"))
        self.user_table.load_state_dict(part(state, "user_table"))
        self.item_table.load_state_dict(part(state, "item_table"))
        if self.config.recent_items and "context_table" in present:
            self.context_table.load_state_dict(part(state, "context_table"))
        if self.config.popularity_weight:
            self.prior.load_state_dict(part(state, "prior"))
        if self.transition is not None and "transition" in present:
            self.transition.load_state_dict(part(state, "transition"))
        self.sync_rows()  # parts that start fresh get their rows

    @property
    def _transition_window(self) -> int:
        """Transitions pair a click with the recent items, so they reach back no further."""
        return min(self.config.transition_window, self._recent)

    @property
    def _floor_bias(self) -> float:
        return self.config.popularity_weight * FLOOR

    def check_rows(self, users: np.ndarray, items: np.ndarray) -> None:
        """Raise `ModelError` for rows past what the id maps hold: on the host, before upload."""
        if (users.size and int(users.max()) >= self.users.extent) or (
            items.size and int(items.max()) >= self.items.extent
        ):
            raise ModelError("event rows beyond the tables: map ids with rows_for first")

    def learn(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        weights: torch.Tensor,
        event_ts: torch.Tensor | float | None = None,
        *,
        click_ts: torch.Tensor | None = None,
        check: bool = True,
    ) -> LearnStats:
        """Take one step on a batch of positive (user row, item row, weight) events.

        `event_ts` (seconds; a float, or a tensor whose newest value counts) drives the
        popularity prior's clock; without it a time clock stands still. `click_ts`, each
        event's own time, is what `history` keeps as its user's newest (zeros without it).

        The step reads the users' recent items from `history` first, then writes the
        batch's clicks into it. A refused step's clicks go in all the same (also when
        `check` then raises): the ring records what users clicked, which their lists
        must exclude, not what was learned; the next step's query holds them.

        No host sync inside the step: nothing is read back, no shape depends on the
        data. A non-finite loss still refuses the step: every update is applied
        masked by a device flag. With `check` (the default) that flag is read once,
        at the end, and a refused step raises `ModelFitError`; the worker passes
        `check=False` and reads `LearnStats.read()` once after the batch (a refused
        step then still counts in `steps`). Rows on the CPU are checked here; rows
        already on a device must have been checked on the host (`check_rows`).
        """
        self.sync_rows()
        n = users.numel()
        if n == 0:
            empty = torch.zeros((), device=self.device)
            none = items.new_empty(0)
            return LearnStats(0, empty, torch.ones((), dtype=torch.bool), none, none)
        if users.device.type == "cpu" and items.device.type == "cpu":
            self.check_rows(users.numpy(), items.numpy())
        cfg = self.config
        term = self.transition
        latest = self.history.latest(users, self._transition_window) if term is not None else None
        loss, applied, item_rows, context_rows = self._step(users, items, weights)
        if term is not None and latest is not None:  # latest is set iff transition
            before, after, weight = term.pairs(users, items, weights, latest)
            term.learn(before.masked_fill(~applied, -1), after, weight)
        times = torch.zeros(n, device=self.device) if click_ts is None else click_ts
        self.history.add(users, items, times, rows_ready=True)
        if cfg.popularity_weight:
            clicks = torch.where(applied, weights, 0.0)  # a refused step folds no click in
            item_rows = torch.cat([item_rows, self._fold_prior(items, clicks, event_ts)])
        stats = LearnStats(n, loss, applied, item_rows, context_rows)
        if check and not stats.applied:
            raise ModelFitError(f"non-finite loss at step {self.steps}; batch not applied")
        self.steps += 1
        return stats

    def _step(
        self, users: torch.Tensor, items: torch.Tensor, weights: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One gradient step on (user, item, weight) positives, applied only if its loss is finite.

        Returns the loss and that flag (0-dim, on the device), the item rows and the
        context rows it may have changed (repeats allowed).
        """
        cfg = self.config
        negatives, log_q = self._negatives()
        query, recent, recent_scale = self._query(users)
        pos_vec = self.item_table.weight[items]
        neg_vec = self.item_table.weight[negatives]
        pos = (query * pos_vec).sum(1, keepdim=True)
        # Every event is contrasted with the batch's shared negatives: one GEMM; a negative
        # that is the event's own positive is masked out (an accidental hit).
        neg = query @ neg_vec.T - log_q
        neg = neg.masked_fill(negatives.unsqueeze(0) == items.unsqueeze(1), float("-inf"))
        logits = torch.cat([pos, neg], 1)
        norm = torch.logsumexp(logits, 1, keepdim=True)
        prob = torch.exp(logits - norm)
        weight = weights.unsqueeze(1)
        coef_pos = (prob[:, :1] - 1.0) * weight  # d loss / d positive logit
        coef_neg = prob[:, 1:] * weight  # d loss / d negative logits
        grad_query = coef_pos * pos_vec + coef_neg @ neg_vec
        grad_pos = coef_pos * query + cfg.l2 * pos_vec
        grad_neg = coef_neg.T @ query + cfg.l2 * neg_vec
        loss = ((norm - pos).squeeze(1) * weights).sum() / weights.sum()
        applied = torch.isfinite(loss)  # read by the caller after the batch, not here
        own = self.user_table.weight[users]
        self.user_table.apply_gradients(
            users, grad_query + cfg.l2 * own, cfg.learning_rate, applied=applied
        )
        context_rows = items[:0]
        if recent is not None:
            held = recent >= 0
            self.context_table.apply_bag_gradients(
                recent,
                grad_query * recent_scale.unsqueeze(1),
                cfg.learning_rate,
                applied=applied,
            )
            # Empty slots report the event's own item row instead: it changed anyway.
            context_rows = torch.where(held, recent, items.unsqueeze(1)).reshape(-1)
        item_rows = torch.cat([items, negatives])
        self.item_table.apply_gradients(
            item_rows, torch.cat([grad_pos, grad_neg]), cfg.learning_rate, applied=applied
        )
        return loss, applied, item_rows, context_rows

    def _fold_prior(
        self, items: torch.Tensor, weights: torch.Tensor, event_ts: torch.Tensor | float | None
    ) -> torch.Tensor:
        """Fold the batch's clicks in (`fold_clicks`) at its time, or its count of events."""
        now = self.prior.time_of(self.config.popularity_clock, items.numel(), event_ts)
        return self.fold_clicks(items, weights, now)

    def fold_clicks(self, items: torch.Tensor, weights: torch.Tensor, now: float) -> torch.Tensor:
        """Fold clicks at `now` into the prior, and its change into the bias column (beta * L).

        Returns the item rows whose bias changed. The batch's own clicks come in
        here, and another worker's (scale-out), so the two always agree.
        """
        rows, delta = self.prior.add(items, weights, now, self.item_table.rows)
        bias = self.item_table.weight[:, -1]
        bias.index_add_(0, rows, (self.config.popularity_weight * delta).to(bias.dtype))
        return rows

    def count_clicks(self, items: torch.Tensor, weights: torch.Tensor, event_ts: float) -> None:
        """Fold clicks into the popularity prior alone, no gradient step (a warm start's counts)."""
        if self.config.popularity_weight and items.numel():
            self.sync_rows()
            times = torch.full((1,), event_ts, dtype=torch.float64, device=self.device)
            self._fold_prior(items.to(self.device), weights.to(self.device), times)

    def add_transitions(
        self, before: torch.Tensor, after: torch.Tensor, weight: torch.Tensor
    ) -> None:
        """Add pairs another worker saw to the rings, as if seen here (not watched: not ours)."""
        if self.transition is not None:
            self.transition.add(before, after, weight)

    def _negatives(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Shared negatives and the log of their sampling rate (0 when the catalogue is whole)."""
        rows, wanted = self.item_table.rows, self.config.negatives
        if wanted >= rows:  # a small catalogue: contrast with all of it, no correction
            return torch.arange(rows, device=self.device), torch.zeros(rows, device=self.device)
        negatives = torch.randint(0, rows, (wanted,), generator=self._generator, device=self.device)
        return negatives, torch.full((wanted,), math.log(wanted / rows), device=self.device)

    def _query(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Query vectors, the recent item rows behind them (`-1` padded) and their scale."""
        own = self.user_table.weight[users]
        if not self._recent:
            return own, None, own.new_empty(0)
        # fixed width: its shape never waits on the data
        recent = self.history.latest(users, self._recent)
        held = recent >= 0
        scale = held.sum(1).clamp(min=1).float().pow(-self.config.recent_alpha)
        # One fused gather-and-sum (no [users, n, dim] copy); `-1` slots weigh 0.
        context = torch.nn.functional.embedding_bag(
            recent.clamp(min=0),
            self.context_table.weight,
            mode="sum",
            per_sample_weights=held.to(self.context_table.weight.dtype),
        )
        return own + scale.unsqueeze(1) * context, recent, scale

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """Query vectors of user rows (last column 1, to pick up the item bias)."""
        return self._query(users)[0]

    def cold_vector(self) -> torch.Tensor:
        """The query of a user with no row and no history: item biases alone (popularity)."""
        query = torch.zeros(1, self.config.dim + 1, device=self.device)
        query[0, -1] = 1.0
        return query

    def item_vectors(self) -> torch.Tensor:
        """The live item matrix, one row per known item, as the index searches it."""
        return self.item_table.view()
