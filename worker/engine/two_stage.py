"""Lists in two stages: candidates from several sources, then a ranker learned from the clicks.

Stage 1 asks each source (`index.candidates`) for a small set per user: the
item index over the learned vectors, co-visits and successors of the user's
recent clicks, what is trending at each time scale, the cold-start list. Their
union, seen and hidden items removed, is a few hundred rows per user whatever
the catalogue's size. Stage 2 computes features per (user, candidate) in
batched tensors and scores them with `models.ranker.OnlineRanker`, which
learns before each batch is folded in: each sampled click's candidates are
built from the model as it stood, and the clicked item is the positive.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from index.base import ItemIndex
from index.candidates.base import CandidateQuery, CandidateSource, Proposal
from index.candidates.merge import best, distinct_slots, member
from index.candidates.neighbours import NeighbourSource
from index.candidates.popular import ColdStartSource, TrendingSource
from index.candidates.successors import NoNeighbours, SuccessorRings
from index.candidates.vector import VectorSource
from index.exclusion import top_k_excluding
from index.knn import row_scores
from models.covisit import CoVisitation
from models.delayed import DelayedSets, Labels
from models.hit_share import HitShare
from models.learner import OnlineLearner
from models.mixture import MixtureWeight
from models.ranker import OnlineRanker, RankerStats
from models.state import StateDict, part, prefixed
from models.take import take_rows
from models.trending import Trending
from worker.engine.between_sessions import mix_popular, popular_log_p
from worker.engine.candidate_names import SOURCES
from worker.engine.mix import mix
from worker.engine.side_by_side import rank_side_by_side, user_chunks
from worker.engine.stage_config import StageConfig
from worker.engine.taste import taste_log_p

# Users ranked at a time: bounds the rank's temporaries (about 30 kB a user) to ~30 MB on a
# CPU (per thread ranking side by side) and ~0.5 GB on a device, where fewer, larger steps
# cost less.
RANK_CHUNK_CPU = 1024
RANK_CHUNK_DEVICE = 16_384
# a ranked chunk's most idle users: their rows, idle times, candidate rows and features
Held = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Lesson:
    """A batch's clicks studied before they are learned, and their sample's candidates.

    Every click (`user_rows`, `clicked`) labels the sets kept at rest; the sample
    (`taught`, `taught_clicked`, `candidates`) teaches the heads.
    """

    user_rows: np.ndarray
    clicked: torch.Tensor
    taught: np.ndarray
    taught_clicked: torch.Tensor
    candidates: Candidates


@dataclass(frozen=True)
class Candidates:
    """Candidate rows `[users, n]` (`-1`: none), features `[users, n, f]`, idle `[users]` (s)."""

    rows: torch.Tensor
    features: torch.Tensor
    idle: torch.Tensor

    @property
    def valid(self) -> torch.Tensor:
        """Where a real candidate sits."""
        return self.rows >= 0


class TwoStage:
    """Candidate sources, trending counts and the ranker, driven by the Engine."""

    def __init__(
        self,
        learner: OnlineLearner,
        index: ItemIndex,
        config: StageConfig | None = None,
        *,
        clock: str = "time",
        tau: float = 3600.0,
        static_shapes: bool | None = None,
        top_k: int = 10,
    ) -> None:
        """Sources over the learner's tables and seen history; trending at `config.scales` x `tau`.

        `top_k` is the lists' length, which popularity's learned share between sessions
        is chosen for.

        `static_shapes` (default: on a device, not on a CPU): no shape depends on the
        data, so a batch's rank never waits for the host; a CPU instead cuts work to
        what the data holds (the seen width, distinct clicked items).
        """
        self.config = config or StageConfig()
        self.learner, self.history, self.index = learner, learner.history, index
        self.device = learner.device
        self.static_shapes = self.device.type != "cpu" if static_shapes is None else static_shapes
        self.rank_chunk = RANK_CHUNK_CPU if self.device.type == "cpu" else RANK_CHUNK_DEVICE
        self.clock_kind = clock
        self.events = 0.0  # clicks folded in: the trending clock when `clock` is "events"
        self.time = 0.0  # the batch clock (seconds), for the users' idle time
        self.trending = Trending(tuple(s * tau for s in self.config.scales), self.device)
        counts = learner.transition
        covisit: CoVisitation | NoNeighbours = NoNeighbours()
        successors: SuccessorRings | NoNeighbours = NoNeighbours()
        if counts is not None:
            covisit, successors = counts.covisit, SuccessorRings(counts.table, self.static_shapes)
            counts.covisit.compact = not self.static_shapes  # its fold's shapes, as the rank's
        self.successor_rings = successors
        cfg = self.config
        built: dict[str, CandidateSource] = {
            "vector": VectorSource(cfg.vector),
            "covisit": NeighbourSource(
                "covisit",
                covisit,
                cfg.covisit,
                cfg.covisit_window,
                cfg.covisit_lag_decay,
                cfg.covisit_normalise,
                trim=not self.static_shapes,
            ),
            "successors": NeighbourSource(
                "successors",
                successors,
                cfg.successors,
                cfg.window,
                cfg.lag_decay,
                trim=not self.static_shapes,
            ),
            "trending": TrendingSource(cfg.trending),
            "cold": ColdStartSource(cfg.cold, cfg.cold_max_clicks),
        }
        self.sources = [built[name] for name in SOURCES if name in cfg.sources]
        self.names = self.feature_names()
        self.ranker_start = self.names.index("vector_score")
        scales = self.config.scales
        self.popular_column = self.names.index(
            f"popularity_{scales.index(1.0) if 1.0 in scales else 0}"
        )
        # the user's taste: the co-visit score, looked up for every candidate
        taste = "covisit_score" in self.names and cfg.taste_share > 0
        self.taste_column = self.names.index("covisit_score") if taste else None
        # its share, learned from later clicks on earlier candidate sets (`DelayedSets`)
        self.taste = MixtureWeight(cfg.taste_share, self.device)
        self.learns_taste = self.taste_column is not None and cfg.taste_learned
        # popularity's share in an idle user's list, learned from the clicks of users who
        # come back to the set they had at rest (kept at least as long as a pause)
        self.idle_share = HitShare(cfg.idle_popular_share, self.device, top_k, cfg.resting_sets)
        between = cfg.idle_after_s > 0 and cfg.idle_popular_share > 0
        self.learns_idle = between and cfg.idle_learned
        self.resting = DelayedSets(
            cfg.resting_sets,
            cfg.delayed_uses,
            self.device,
            min_age_s=cfg.idle_after_s,
            track_ended=self.learns_idle,
        )
        self.source_start = len(self.names) - sum(
            4 if isinstance(source, NeighbourSource) else 2 for source in self.sources
        )
        self.ranker = OnlineRanker(
            len(self.names), cfg.ranker, self.device, start=self.ranker_start
        )
        self.drop = torch.tensor(
            [name.split(":")[0] in cfg.drop for name in self._groups()], device=self.device
        )
        self.dropping = bool(cfg.drop)
        later = dataclasses.replace(cfg.ranker, seed=cfg.ranker.seed + 1)
        self.later = OnlineRanker(len(self.names), later, self.device, start=self.ranker_start)
        self.delayed = DelayedSets(
            cfg.delayed_sets, cfg.delayed_uses, self.device, min_age_s=cfg.delayed_min_s
        )
        self.last_fit: RankerStats | None = None
        self._lesson: Lesson | None = None
        # per ranked chunk: its most idle users' rows, idle times, candidate rows, features
        self._held: list[Held] = []
        self._lists: tuple[tuple[object, ...], torch.Tensor, torch.Tensor] | None = None
        self._items: tuple[tuple[object, ...], torch.Tensor] | None = None

    def feature_names(self) -> list[str]:
        """One name per feature column, in order."""
        names = ["vector_score", "item_bias"]
        names += [f"popularity_{n}" for n in range(len(self.trending.scales))]
        names += ["item_age", "item_idle", "user_clicks", "user_idle"]
        for source in self.sources:
            names += [f"{source.name}_rank", f"{source.name}_proposed"]
            if isinstance(source, NeighbourSource):
                names += [f"{source.name}_score", f"{source.name}_near"]
        return names

    def _groups(self) -> list[str]:
        """The ablation group of each feature column."""
        groups = ["vector", "vector"] + ["popularity"] * len(self.trending.scales)
        groups += ["item_time", "item_time", "user", "user"]
        for source in self.sources:
            groups += ["source_ranks"] * 2
            if isinstance(source, NeighbourSource):
                groups += ["neighbours"] * 2
        return groups

    # -- learning --------------------------------------------------------------------------

    def observe(self, items: torch.Tensor, weights: torch.Tensor, clock: float) -> None:
        """Fold a batch's learned clicks (item rows) into the trending counts."""
        self.events += items.numel()
        self.time = max(self.time, clock)
        now = self.events if self.clock_kind == "events" else clock
        self.trending.max_rows = self.learner.item_table.max_rows
        self.trending.add(items, weights, now, self.learner.items.extent)

    def reset_items(self, rows: torch.Tensor) -> None:
        """Rows handed to new items start with no clicks, in no kept candidate set."""
        self.trending.ensure_rows(self.learner.items.extent)
        self.trending.reset(rows)
        self.delayed.forget_items(rows)
        self.resting.forget_items(rows)

    def reset_users(self, rows: np.ndarray) -> None:
        """Rows handed to new users hold none of their earlier owners' kept candidate sets."""
        self.delayed.forget_users(rows)
        self.resting.forget_users(rows)

    def study(self, user_rows: np.ndarray, clicked: torch.Tensor) -> None:
        """Build a sample of clicks' candidates before they are learned; taught by `train`.

        The candidates must come from the model as it stands (test, then train), but the
        step that teaches them need not: the worker runs it once the batch's lists are on
        their way to Redis, beside the write. A lesson still pending is taught first.
        """
        self.train()
        take = self.config.train_events
        taught, taught_clicked = user_rows, clicked
        if user_rows.size > take:
            pick = np.linspace(0, user_rows.size - 1, take).astype(np.int64)
            taught = user_rows[pick]
            taught_clicked = clicked[torch.from_numpy(pick).to(clicked.device)]
        rows = torch.from_numpy(taught).to(self.device)
        self._lesson = Lesson(user_rows, clicked, taught, taught_clicked, self.candidates(rows))

    def train(self) -> RankerStats | None:
        """Teach both heads the pending lesson, if any (None: nothing was pending).

        The next-click head learns each click against the candidates its user had
        when it was studied; the later head against the set that user had some
        batches ago (`DelayedSets`).
        """
        if self._lesson is None:
            return None
        lesson, self._lesson = self._lesson, None
        user_rows, clicked, candidates = lesson.taught, lesson.taught_clicked, lesson.candidates
        if self.learns_idle:
            self._learn_idle(lesson.user_rows, lesson.clicked)
        hit = candidates.rows == clicked.unsqueeze(1)
        positive = torch.where(hit.any(1), hit.int().argmax(1), -1)
        stats = self.ranker.fit(candidates.features, candidates.valid, positive)
        if self.config.next_weight < 1 or self.learns_taste:
            # only the later head learns from a set's first clicks
            young = 0 if self.config.next_weight < 1 else self.config.taste_lag + 1
            if (later := self.delayed.labelled(user_rows, clicked, young)) is not None:
                if self.learns_taste:
                    self._learn_taste(later)
                if self.config.next_weight < 1:
                    self.later.fit(later.features, later.valid, later.positive)
            self.delayed.store(user_rows, candidates.rows, candidates.features, self.time)
        self.last_fit = stats
        return stats

    # -- ranking ---------------------------------------------------------------------------

    def rank(
        self,
        user_rows: torch.Tensor,
        top_k: int,
        unavailable: torch.Tensor | None,
        threads: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(rows, scores)` `[users, top_k]`: the ranker's best candidates, `-1` past them.

        At most `rank_chunk` users at a time: a user's candidates and features take
        about 30 kB, so a 16,384-event backlogged batch ranked at once would hold
        half a gigabyte of temporaries (and the process would keep the pages). On a
        CPU, `threads` > 1 ranks the chunks side by side (`worker.engine.side_by_side`),
        one chunk's temporaries per thread.
        """
        self._held = []  # a caller that never read back the last rank's: dropped
        threads = threads if self.device.type == "cpu" else 1
        chunks = user_chunks(user_rows, self.rank_chunk, threads)
        if len(chunks) > 1 and threads > 1:
            self._prepare_side_by_side(user_rows, unavailable, max(c.numel() for c in chunks))

        def rank_chunk(rows: torch.Tensor) -> tuple[Held | None, torch.Tensor, torch.Tensor]:
            candidates = self.candidates(rows, unavailable)  # freed here: only `Held` is kept
            held = self._resting_sample(rows, candidates) if self.learns_idle else None
            return held, *best(candidates.rows, self.score(candidates), top_k)

        parts = []
        for held, chosen, scores in rank_side_by_side(rank_chunk, chunks, threads):
            if held is not None:
                self._held.append(held)
            parts.append((chosen, scores))
        if len(parts) == 1:
            return parts[0]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _learn_taste(self, later: Labels) -> None:
        """Fold later clicks on earlier candidate sets into the taste's share (online EM).

        The share serves lists read later, so it learns from clicks that came more than
        `taste_lag` of the user's studied clicks after their set was kept (the next few
        are the ranker's), scored by the heads as they stand.
        """
        assert self.taste_column is not None  # noqa: S101 (learns_taste implies it)
        features, valid = later.features, later.valid
        taste = taste_log_p(features[:, :, self.taste_column], valid)
        positive = later.positive.masked_fill(later.ages <= self.config.taste_lag, -1)
        self.taste.learn(self._heads(features, valid), taste, positive)

    def _prepare_side_by_side(
        self, user_rows: torch.Tensor, unavailable: torch.Tensor | None, most_users: int
    ) -> None:
        """Build here what each chunk would build lazily, so threads ranking chunks only read.

        The shared lists and the trending peaks (once per model state), the item table
        where a chunk of `most_users` may read through it, and the successor rings the
        users will read, compacted as one set: which rows are compacted together can
        break ties among equal successors, so the lists do not depend on timing.
        """
        self._shared_lists(unavailable)
        extent = self.learner.items.extent
        self.trending.relative_log_mass(user_rows.new_zeros(0), extent)
        if self._reads_item_table(most_users * self.config.width):
            self._item_table()
        if "successors" in self.config.sources and isinstance(self.successor_rings, SuccessorRings):
            self.successor_rings.refresh(self.history.latest(user_rows, self.config.window))

    def _resting_sample(self, user_rows: torch.Tensor, candidates: Candidates) -> Held:
        """The sets of a chunk's most idle users, held until the host knows who is at rest.

        No shape here depends on the data, so nothing waits on a device: the rows and
        idle times go down with the rank's own download (`held`), and `keep_resting`
        then keeps the sets of those at rest.
        """
        most = min(self.resting.per_batch, user_rows.numel())
        idle, at = torch.topk(candidates.idle, most)
        return user_rows[at], idle, candidates.rows[at], candidates.features[at]

    def held(self) -> list[torch.Tensor]:
        """The held sets' user rows and idle times, chunk by chunk, for the rank's download."""
        return [tensor for rows, idle, _, _ in self._held for tensor in (rows, idle)]

    def keep_resting(self, host: list[np.ndarray]) -> None:
        """Keep the held sets of users at rest (`host`: `held()` as read back).

        Their users' later clicks label them for popularity's share between sessions.
        """
        held, self._held = self._held, []
        if not held:
            return
        sizes = [idle.size for idle in host[1::2]]
        idle, chunk = np.concatenate(host[1::2]), np.repeat(np.arange(len(held)), sizes)
        starts = np.cumsum([0, *sizes])
        # the most idle of the whole rank, at most `per_batch` of them, as one store would
        chosen = np.argsort(-idle, kind="stable")[: self.resting.per_batch]
        chosen = chosen[idle[chosen] >= self.config.idle_after_s]
        for n, (_, _, rows, features) in enumerate(held):
            at = chosen[chunk[chosen] == n] - starts[n]
            if at.size:
                take = torch.from_numpy(at).to(self.device)
                self.resting.store(host[2 * n][at], rows[take], features[take], self.time)
        self._settle_idle()  # sets the new ones replaced

    def _learn_idle(self, user_rows: np.ndarray, clicked: torch.Tensor) -> None:
        """Fold clicks on sets kept at rest into popularity's share between sessions.

        The share serves a list read after a pause, so it learns from the clicks of
        users who came back to such a list: under each share on a grid, would the set
        ranked by the heads (and taste) as they stand, mixed with popularity, have
        named the click in its top K (`models.hit_share`)?
        """
        later = self.resting.labelled(user_rows, clicked)
        if later is not None:
            features, valid = later.features, later.valid
            popular = popular_log_p(features[:, :, self.popular_column], valid, self.config)
            nearby = self._nearby(features, valid)
            self.idle_share.learn(nearby, popular, later.positive, later.slots)
        self._settle_idle()

    def _settle_idle(self) -> None:
        """Lists kept at rest that ended (spent, replaced, forgotten) count for the share."""
        if ended := self.resting.ended().tolist():
            self.idle_share.settle(torch.tensor(ended, device=self.device))

    def _heads(self, features: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Both heads' log-softmax over each user's candidates: `log(a p_next + (1-a) p_later)`.

        A list serves whoever reads it next, soon or much later; `a` is `next_weight`.
        """
        weight = self.config.next_weight
        nearby = torch.log_softmax(self.ranker.score(features).masked_fill(~valid, -torch.inf), 1)
        if weight < 1:
            later = self.later.score(features).masked_fill(~valid, -torch.inf)
            nearby = mix(nearby, torch.log_softmax(later, 1), 1.0 - weight)
        return nearby

    def score(self, candidates: Candidates) -> torch.Tensor:
        """The heads' log-probabilities (`_heads`), the user's taste mixed in, then popularity.

        The taste enters at its learned share (`mix.mix`), and an idle user's list
        then takes in popularity at its own learned share (`between_sessions.mix_popular`).
        """
        features, valid = candidates.features, candidates.valid
        nearby = self._nearby(features, valid)
        popular = features[:, :, self.popular_column]
        return mix_popular(
            nearby, popular, valid, candidates.idle, self.config, self.idle_share.value
        )

    def _nearby(self, features: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The heads' log-probabilities with the user's taste mixed in at its share."""
        nearby = self._heads(features, valid)
        if self.taste_column is not None:
            taste = taste_log_p(features[:, :, self.taste_column], valid)
            nearby = mix(nearby, taste, self.taste.value)
        return nearby

    def candidates(
        self, user_rows: torch.Tensor, unavailable: torch.Tensor | None = None
    ) -> Candidates:
        """Stage 1 and the features: the union of every source's rows, seen and hidden left out."""
        query = self._query(user_rows, unavailable)
        proposals = self._proposals(query)
        # on a CPU, only as many slots as the fullest user fills (the bench's load: about 140
        # distinct of 310 proposed at vector width 100, so the features, ranker and top-k read half)
        rows, where = distinct_slots(
            torch.cat([p.rows for p in proposals], 1), query.extent, trim=not self.static_shapes
        )
        # zeros: one contiguous fill, where zeroing the sources' columns of an empty tensor
        # was a strided pass; every value written below is finite (see the multiply). Held
        # feature-major (`[f, users, n]`, seen through a permuted view): each feature is
        # written as one contiguous plane, not as a column strided across every candidate.
        planes = torch.zeros(len(self.names), *rows.shape, device=self.device)
        features = planes.permute(1, 2, 0)
        also = next((p.also for p in proposals if p.also is not None), None)
        vector = torch.cat(self._vector_scores(query, proposals, also), 1)
        vector = vector.masked_fill_(torch.isneginf(vector), 0.0)  # padding: lands on -1 slots
        # a row's inner product is the same whichever source proposed it: any write wins
        features[:, :, 0].scatter_(1, where, vector)
        self._put_source_columns(features, proposals, where, rows)
        excluded = member(rows, query.seen, query.extent)
        if unavailable is not None and unavailable.numel():
            excluded |= unavailable[rows.clamp(min=0, max=unavailable.numel() - 1)] & (rows >= 0)
        rows = rows.masked_fill(excluded, -1)
        idle = self._put_item_features(features, query, rows)
        if self.dropping:
            features.masked_fill_(self.drop, 0.0)
        # a multiply, not `masked_fill_`, which is 4x slower over a broadcast mask on a CPU
        # (ranks of 512 users over 10^4 items: 1-5 % faster in alternated runs)
        features.mul_((rows >= 0).unsqueeze(2).to(features.dtype))
        return Candidates(rows, features, idle)

    def _proposals(self, query: CandidateQuery) -> list[Proposal]:
        """Every source's proposal, in `self.sources`' order; the vector source's last.

        The rows of the sources scored per user (the neighbours') go to the vector source
        as `score_rows`: where it searches a dense score matrix, it reads their inner
        products off it, where a gather of their vectors cost more than its own search's
        top-k (2026-12-07: 18 of 126 µs a user's rank).
        """
        proposals: dict[str, Proposal] = {}
        for source in self.sources:
            if not isinstance(source, VectorSource):
                proposals[source.name] = source.propose(query)
        gathered = [p.rows for p in proposals.values() if _scored_per_user(p)]
        if gathered:
            rows = torch.cat(gathered, 1).clamp(min=0, max=max(0, query.extent - 1))
            query = dataclasses.replace(query, score_rows=rows)
        for source in self.sources:
            if isinstance(source, VectorSource):
                proposals[source.name] = source.propose(query)
        return [proposals[source.name] for source in self.sources]

    def _vector_scores(
        self, query: CandidateQuery, proposals: list[Proposal], also: torch.Tensor | None
    ) -> list[torch.Tensor]:
        """`[users, width]` inner products of each proposal's rows with the users' queries.

        The vector source's own scores are these; a list everyone shares is scored by
        one matrix product; the per-user rows of the neighbour sources are read off
        `also` (the vector source's dense scores at them, in the order `_proposals`
        asked), or else gathered (a gather per candidate is what costs on a CPU).
        """
        items = self.learner.item_vectors()
        scored, at = [], 0
        for proposal in proposals:
            rows = proposal.rows
            if proposal.scored:
                scored.append(proposal.scores)
                continue
            if proposal.shared is not None:
                shared = proposal.shared.clamp(min=0, max=max(0, items.shape[0] - 1))
                scores = query.queries.float() @ items[shared].float().T
            elif also is None:
                scores = row_scores(query.queries, items, rows.clamp(min=0))
            else:  # the proposals `_scored_per_user` picks, side by side in this order
                scores = also[:, at : at + rows.shape[1]]
                at += rows.shape[1]
            scored.append(scores.masked_fill(rows < 0, -torch.inf))
        return scored

    def _query(self, user_rows: torch.Tensor, unavailable: torch.Tensor | None) -> CandidateQuery:
        learner, history = self.learner, self.history
        trending, cold = self._shared_lists(unavailable)
        return CandidateQuery(
            index=self.index,
            user_rows=user_rows,
            queries=learner.user_vectors(user_rows),
            seen=history.slots(user_rows) if self.static_shapes else history.seen(user_rows),
            seen_counts=history.seen_counts(user_rows),
            recent=history.latest(user_rows, self.config.recent_window),
            clicks=history.written[user_rows],
            trending=trending,
            cold=cold,
            unavailable=unavailable,
            extent=learner.items.extent,
        )

    def _shared_lists(self, unavailable: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The trending lists and the cold-start list: O(catalogue), so made once per model state.

        A batch's fit and rank share them unless learning, the index or what is
        hidden changed in between.
        """
        learner = self.learner
        key = (
            learner.steps,
            learner.items.extent,
            self.index.version,
            self.trending.version,
            None if unavailable is None else unavailable.data_ptr(),
        )
        if self._lists is not None and self._lists[0] == key:
            return self._lists[1], self._lists[2]
        nothing = torch.full((1, 1), -1, dtype=torch.int64, device=self.device)
        cold = top_k_excluding(
            self.index,
            learner.cold_vector(),
            nothing,
            torch.zeros(1, dtype=torch.int64, device=self.device),
            self.config.cold,
            unavailable=unavailable,
        ).rows[0]
        trending = self.trending.top(learner.items.extent, self.config.trending)
        self._lists = (key, trending, cold)
        return trending, cold

    def _put_source_columns(
        self,
        features: torch.Tensor,
        proposals: list[Proposal],
        where: torch.Tensor,
        rows: torch.Tensor,
    ) -> None:
        """Per source 1/(1 + rank) and a 1; a neighbour's score and nearness, in its columns.

        A source proposes each row once, so its rank is put (not summed) at the slots
        its rows merged into. A neighbour source's score and nearness are looked up for
        every candidate (`rows`), whichever source proposed it: an item the vector
        source found that several past clicks co-visit is a taste item, and says so.
        """
        planes = features.permute(2, 0, 1)  # `[f, users, n]`: each feature one contiguous plane
        col, at = self.source_start, 0
        for proposal in proposals:
            m = proposal.rows.shape[1]
            held = (proposal.rows >= 0).float()
            slots = where[:, at : at + m]
            planes[col].scatter_(1, slots, held / (1.0 + torch.arange(m, device=self.device)))
            planes[col + 1].scatter_(1, slots, held)
            if proposal.reach is not None:
                score, near = proposal.reach.lookup(rows)
                features[:, :, col + 2] = score
                features[:, :, col + 3] = near
                col += 2
            col, at = col + 2, at + m

    def _put_item_features(
        self, features: torch.Tensor, query: CandidateQuery, rows: torch.Tensor
    ) -> torch.Tensor:
        """Item bias, popularity per scale, item ages, then the user's activity, after column 0.

        Returns each user's idle time `[users]` (seconds since their last click).
        """
        clamped = rows.clamp(min=0)
        if self._reads_item_table(clamped.numel()):
            columns = take_rows(self._item_table(), clamped)
        else:  # a catalogue larger than the candidates: read only theirs
            columns = self._item_columns(clamped)
        width = columns.shape[-1]
        features[:, :, 1 : 1 + width] = columns
        idle = (self.time - self.history.last_ts[query.user_rows]).clamp(min=0)
        features[:, :, 1 + width] = query.clicks.float().log1p().unsqueeze(1)
        features[:, :, 2 + width] = idle.log1p().float().unsqueeze(1)
        return idle

    def _reads_item_table(self, candidates: int) -> bool:
        """Whether `candidates` slots read item features through `_item_table` (no larger)."""
        return self.learner.items.extent <= candidates

    def _item_columns(self, rows: torch.Tensor) -> torch.Tensor:
        """`[*rows.shape, 3 + scales]`: item rows' bias, popularity per scale, age, idle time."""
        bias = self.learner.item_table.weight[rows, -1:].float()
        popular = self.trending.relative_log_mass(rows, self.learner.items.extent)
        age, idle = self.trending.ages(rows)
        return torch.cat([bias, popular, age.unsqueeze(-1), idle.unsqueeze(-1)], -1)

    def _item_table(self) -> torch.Tensor:
        """`_item_columns` of every item row, made once per model state.

        Where the catalogue is no larger than a batch's candidates, one gather per
        candidate then reads them all, rather than one per feature; a larger one
        is read per candidate instead, so the rank's cost follows the candidates.
        """
        learner = self.learner
        extent = learner.items.extent
        key = (learner.steps, extent, self.index.version, self.trending.version)
        if self._items is not None and self._items[0] == key:
            return self._items[1]
        table = self._item_columns(torch.arange(extent, device=self.device))
        self._items = (key, table)
        return table

    def learned_shares(self) -> dict[str, MixtureWeight | HitShare]:
        """The mixture shares learned from the stream, by name: what workers share."""
        shares: dict[str, MixtureWeight | HitShare] = (
            {"taste": self.taste} if self.learns_taste else {}
        )
        return shares | ({"idle": self.idle_share} if self.learns_idle else {})

    # -- state -----------------------------------------------------------------------------

    def state_dict(self) -> StateDict:
        """Trending counts, both heads and the two shares' sums (a pending lesson taught first)."""
        self.train()
        state: StateDict = {"events": self.events, "time": self.time}
        state |= prefixed("trending", self.trending.state_dict(self.learner.items.extent))
        state |= prefixed("later", self.later.state_dict())
        state |= prefixed("taste", self.taste.state_dict())
        state |= prefixed("idle", self.idle_share.state_dict())
        return state | prefixed("ranker", self.ranker.state_dict())

    def load_state_dict(self, state: StateDict) -> None:
        """Restore `state_dict()` output; parts an older checkpoint lacks start fresh."""
        trending, ranker = part(state, "trending"), part(state, "ranker")
        if trending:
            self.trending.load_state_dict(trending)
        if ranker:
            self.ranker.load_state_dict(ranker)
        if later := part(state, "later"):
            self.later.load_state_dict(later)
        if (taste := part(state, "taste")) and self.learns_taste:  # else it stays as set
            self.taste.load_state_dict(taste)
        if (idle := part(state, "idle")) and self.learns_idle:
            self.idle_share.load_state_dict(idle)
        events = state.get("events")
        self.events = float(events) if isinstance(events, int | float) else 0.0
        stamp = state.get("time")
        self.time = float(stamp) if isinstance(stamp, int | float) else 0.0


def _scored_per_user(proposal: Proposal) -> bool:
    """Rows each user has apart whose inner products no one has computed (the neighbours')."""
    return not proposal.scored and proposal.shared is None
