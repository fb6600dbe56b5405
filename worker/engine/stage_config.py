"""How wide each candidate source is, what the ranker sees and how it learns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from models.ranker import RankerConfig
from worker.engine.candidate_names import GROUPS, SOURCES


@dataclass(frozen=True)
class StageConfig:
    """How wide each source is, what the ranker sees, and how it learns."""

    # Widths: on 2 CPU cores, 200/100/100 and a window of 8 cost twice as much per user
    # for ml-100k HR@10 0.1119 against 0.1098 (docs/benchmarks.md, 2026-12-04). Vector 50
    # against 100 (2026-12-07): long-horizon HR@10 up on three streams of four (genres
    # 0.8023 / 0.8001 against 0.7925 / 0.7969 over two seeds), next click within 0.002,
    # the rank 5 % cheaper: fewer nearest items leave the taste sources more of the list.
    vector: int = 50
    covisit: int = 50
    successors: int = 50
    trending: int = 60
    cold: int = 50
    cold_max_clicks: int = 5  # the cold-start list joins for users with at most this many clicks
    window: int = 4  # recent clicks whose successors are proposed
    # Recent clicks whose co-visits are proposed: a taste is wider than what comes next
    # (synthetic streams, 2026-12-06: next-click and long-horizon HR@10 up 1-2 % at 10
    # against 4; docs/accuracy.md, "Round 5").
    covisit_window: int = 10
    lag_decay: float = 0.8  # a click `lag` steps back weighs `lag_decay ** lag` (successors)
    # The co-visit source's, and the normalisation of each click's co-visits by their
    # total ** this (item-kNN's): a taste is read from many clicks, each of them counting.
    covisit_lag_decay: float = 0.9
    covisit_normalise: float = 0.5
    # The share of each list's mixture given to the user's taste: the candidates' co-visit
    # scores, as `log((1 - t) p_ranker + t p_taste)` (`worker/engine/taste.py`); 0: none.
    taste_share: float = 0.3
    # Learn the share from later clicks on earlier candidate sets (online EM, `models.mixture`),
    # starting at `taste_share`; False: the share stays as set. Only a user's studied clicks
    # more than `taste_lag` after their set was kept teach it: the next few are the ranker's
    # (synthetic streams: long-horizon HR@10 up 0.1-0.4 % against every later click).
    taste_learned: bool = True
    taste_lag: int = 5
    scales: tuple[float, ...] = (0.1, 1.0, math.inf)  # trending time constants / popularity_tau
    train_events: int = 64  # clicks per batch the ranker learns from (sampled evenly; the replay
    # holds the last 4,096, so a small sample per batch still steps on 512)
    # The next-click head's share of the mix with the later head; 1: that head alone (on
    # ml-100k 0.5 gave HR@10 0.1094 / long-horizon 0.6900 against 0.1119 / 0.7029 for 1).
    next_weight: float = 1.0
    # A user idle this long (seconds) is between sessions: their list, read when they come
    # back, mixes popularity at 1 x tau into the next-click head as
    # `log((1 - s) p_next + s p_popular)`, `p_popular` a softmax of `idle_sharpness` times
    # the candidates' log popularity; 0 seconds or share 0: never (ml-100k, 2026-12-06:
    # HR@10 0.1094 / long horizon 0.7502 against 0.1089 / 0.7019 without).
    idle_after_s: float = 3600.0
    idle_popular_share: float = 0.4
    idle_sharpness: float = 2.0
    # Learn `s` (starting at `idle_popular_share`) from the clicks of users coming back to the
    # candidate set they had at rest (`resting_sets` of them kept, each for at least
    # `idle_after_s`); False: `s` stays as set. ml-100k wants more popularity than
    # ml-latest-small, whose long horizon fell from 0.7394 at 0.2 to 0.7021 at 0.6.
    idle_learned: bool = True
    resting_sets: int = 1024
    delayed_sets: int = 2048  # earlier candidate sets kept for the later head and the taste share
    delayed_uses: int = 20  # later clicks each kept set teaches before it is replaced
    # ... or, unspent, once it is this old (s, batch clock): a session's later clicks reach it
    delayed_min_s: float = 900.0
    sources: tuple[str, ...] = SOURCES
    drop: tuple[str, ...] = ()  # feature groups zeroed (ablations)
    ranker: RankerConfig = field(default_factory=RankerConfig)

    def __post_init__(self) -> None:
        """Names must be known: an ablation that names nothing would measure nothing."""
        if unknown := set(self.sources) - set(SOURCES):
            raise ValueError(f"unknown candidate sources: {', '.join(sorted(unknown))}")
        if "vector" not in self.sources:
            raise ValueError("the vector source is required: it alone fills every list")
        if unknown := set(self.drop) - set(GROUPS):
            raise ValueError(f"unknown feature groups: {', '.join(sorted(unknown))}")
        if not 0 <= self.taste_share < 1:
            raise ValueError(f"taste_share must be in [0, 1), got {self.taste_share}")
        if not 0 <= self.taste_lag < self.delayed_uses:
            raise ValueError(
                f"taste_lag must be in [0, delayed_uses={self.delayed_uses}), got {self.taste_lag}"
            )
        if self.idle_after_s < 0 or not 0 <= self.idle_popular_share < 1:
            raise ValueError("idle_after_s must be >= 0 and idle_popular_share in [0, 1)")

    @property
    def recent_window(self) -> int:
        """Recent clicks read per user: the wider of the two neighbour sources' windows."""
        return max(self.window, self.covisit_window)

    @property
    def width(self) -> int:
        """Candidates per user before the union: the sum of the sources' widths."""
        widths = {n: getattr(self, n) for n in SOURCES}
        return sum(widths[name] for name in self.sources)
