"""The settings of the worker's components: model, lists, candidates, events, rows, loop, index.

Parts of `worker.config.settings.Settings`, each read from flat `RECSTREAM_*` variables
(`RECSTREAM_BATCH_SIZE` is `settings.loop.batch_size`). The model part restates
nothing: its defaults and bounds are `models.learner_config`'s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models.learner_config import BOUNDS, LearnerConfig, PopularityClock, defaults
from stream.events import MAX_WEIGHT
from worker.config.limits import DAY_S, MAX_SEARCH_K, TEN_YEARS_S
from worker.engine.candidate_names import GROUPS, SOURCES

# Unset RECSTREAM_NEGATIVES: all of a small catalogue on a GPU, a cheaper batch on a CPU.
GPU_NEGATIVES = 2048
CPU_NEGATIVES = LearnerConfig.negatives


def default_negatives(device_type: str) -> int:
    """Negatives per batch when RECSTREAM_NEGATIVES is unset, for a torch device type."""
    return GPU_NEGATIVES if device_type == "cuda" else CPU_NEGATIVES


_LEARNER_DEFAULTS = defaults()


def _learned(name: str, default: object = ...) -> Any:  # noqa: ANN401  (a pydantic FieldInfo)
    """A model setting: `LearnerConfig`'s default (unless given) and its bound in `BOUNDS`."""
    bound = BOUNDS[name]
    value = _LEARNER_DEFAULTS[name] if default is ... else default
    finite = False if isinstance(value, float) else None  # inf and nan: never a float setting
    return Field(
        default=value, ge=bound.ge, gt=bound.gt, le=bound.le, lt=bound.lt, allow_inf_nan=finite
    )


class ModelSettings(BaseSettings):
    """The online learner: fields of `LearnerConfig`, with its defaults and bounds."""

    model_config = SettingsConfigDict(env_prefix="RECSTREAM_", frozen=True, extra="ignore")

    dim: int = _learned("dim")
    learning_rate: float = _learned("learning_rate")
    # Unset: `default_negatives` of the device the worker runs on.
    negatives: int | None = _learned("negatives", default=None)
    l2: float = _learned("l2")
    recent_items: int = _learned("recent_items")
    popularity_weight: float = _learned("popularity_weight")
    popularity_tau: float = _learned("popularity_tau")
    popularity_clock: PopularityClock = LearnerConfig.popularity_clock
    bias_decay: float = _learned("bias_decay")
    transition_slots: int = _learned("transition_slots")
    transition_window: int = _learned("transition_window")
    transition_decay: float = _learned("transition_decay")
    covisit_slots: int = _learned("covisit_slots")
    covisit_half_life: float = _learned("covisit_half_life")
    seed: int = _learned("seed")

    def negatives_on(self, device_type: str) -> int:
        """RECSTREAM_NEGATIVES, or the default for this device type when it is unset."""
        return self.negatives or default_negatives(device_type)


class RankingSettings(BaseSettings):
    """What a published list holds: its length, and how many seen items it leaves out."""

    model_config = SettingsConfigDict(env_prefix="RECSTREAM_", frozen=True, extra="ignore")

    top_k: int = Field(default=50, ge=1, le=1000)
    seen_history: int = Field(default=1024, ge=1, le=1900)

    @model_validator(mode="after")
    def _history_fits_search(self) -> RankingSettings:
        if self.top_k + self.seen_history > MAX_SEARCH_K:
            raise ValueError(
                f"RECSTREAM_TOP_K + RECSTREAM_SEEN_HISTORY must be <= {MAX_SEARCH_K} "
                f"(got {self.top_k} + {self.seen_history})"
            )
        return self


class CandidateSettings(BaseSettings):
    """Stage 1 (how many rows each source proposes) and stage 2 (the ranker learned online)."""

    model_config = SettingsConfigDict(
        env_prefix="RECSTREAM_CANDIDATES_", frozen=True, extra="ignore"
    )

    vector: int = Field(default=50, ge=1, le=MAX_SEARCH_K)
    covisit: int = Field(default=50, ge=1, le=MAX_SEARCH_K)
    successors: int = Field(default=50, ge=1, le=MAX_SEARCH_K)
    trending: int = Field(default=60, ge=1, le=MAX_SEARCH_K)
    cold: int = Field(default=50, ge=1, le=MAX_SEARCH_K)
    cold_max_clicks: int = Field(default=5, ge=0, le=1 << 40)
    window: int = Field(default=4, ge=1, le=1024)
    covisit_window: int = Field(default=10, ge=1, le=1024)
    sources: Annotated[tuple[str, ...], NoDecode] = SOURCES
    ranker_drop: Annotated[tuple[str, ...], NoDecode] = ()
    ranker_hidden: int = Field(default=16, ge=0, le=1024)
    ranker_learning_rate: float = Field(default=0.01, gt=0, le=10, allow_inf_nan=False)
    ranker_train_events: int = Field(default=64, ge=1, le=65_536)
    next_weight: float = Field(default=1.0, gt=0, le=1, allow_inf_nan=False)
    idle_after_s: float = Field(default=3600.0, ge=0, le=1e9, allow_inf_nan=False)
    idle_popular_share: float = Field(default=0.4, ge=0, lt=1, allow_inf_nan=False)
    taste_share: float = Field(default=0.3, ge=0, lt=1, allow_inf_nan=False)
    taste_learned: bool = True
    idle_learned: bool = True

    @field_validator("sources", "ranker_drop", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if unknown := sorted(set(value) - set(SOURCES)):
            raise ValueError(f"unknown sources {', '.join(unknown)}: use {', '.join(SOURCES)}")
        if "vector" not in value:
            raise ValueError("must include vector: it alone fills every list")
        return value

    @field_validator("ranker_drop")
    @classmethod
    def _known_groups(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if unknown := sorted(set(value) - set(GROUPS)):
            raise ValueError(
                f"unknown feature groups {', '.join(unknown)}: use {', '.join(GROUPS)}"
            )
        return value


class EventSettings(BaseSettings):
    """Hostile but valid events (README, "Event contract"): weights and clock skew."""

    model_config = SettingsConfigDict(env_prefix="RECSTREAM_", frozen=True, extra="ignore")

    max_event_weight: float = Field(default=10.0, ge=1, le=MAX_WEIGHT, allow_inf_nan=False)
    max_clock_skew_s: float = Field(default=300.0, ge=0, le=TEN_YEARS_S, allow_inf_nan=False)
    event_weights: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)

    @field_validator("event_weights", mode="before")
    @classmethod
    def _weights_json(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError('expected a JSON object such as {"click": 1, "buy": 5}') from exc
        return value

    @field_validator("event_weights")
    @classmethod
    def _weights_positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, w in value.items() if not 0 < w <= MAX_WEIGHT]
        if bad:
            raise ValueError(f"weights must be > 0 and <= {MAX_WEIGHT:g} (bad: {', '.join(bad)})")
        return value

    @model_validator(mode="after")
    def _weights_within_max(self) -> EventSettings:
        over = [k for k, w in self.event_weights.items() if w > self.max_event_weight]
        if over:
            raise ValueError(
                f"RECSTREAM_EVENT_WEIGHTS must be <= RECSTREAM_MAX_EVENT_WEIGHT "
                f"({self.max_event_weight:g}; over it: {', '.join(over)})"
            )
        return self


class RowSettings(BaseSettings):
    """Bounded state (README: memory per row): row caps, idle expiry, admission."""

    model_config = SettingsConfigDict(env_prefix="RECSTREAM_", frozen=True, extra="ignore")

    max_users: int = Field(default=1_000_000, ge=1, le=1 << 40)
    max_items: int = Field(default=1_000_000, ge=1, le=1 << 40)
    id_ttl_s: float = Field(default=0.0, ge=0, le=TEN_YEARS_S, allow_inf_nan=False)
    min_occurrences: int = Field(default=1, ge=1, le=1_000_000)


class LoopSettings(BaseSettings):
    """Micro-batching: latency-first, up to `batch_size` events, waiting `batch_ms` when idle."""

    model_config = SettingsConfigDict(env_prefix="RECSTREAM_", frozen=True, extra="ignore")

    batch_size: int = Field(default=4096, ge=1, le=1_000_000)
    # Unset: `worker.loop.batching.default_batch_max` of the device (a backlog grows batches to it).
    batch_max: int | None = Field(default=None, ge=1, le=1_000_000)
    batch_ms: int = Field(default=50, ge=1, le=60_000)
    # Write batch N while learning N+1: auto = only with the model on a GPU (on a CPU the
    # write's threads slow torch's more than the overlap saves; docs/benchmarks.md).
    publish_overlap: Literal["auto", "on", "off"] = "auto"


class IndexSettings(BaseSettings):
    """The item index: its kind and, for `ivf`, when to rebuild and how widely to probe."""

    model_config = SettingsConfigDict(env_prefix="RECSTREAM_INDEX_", frozen=True, extra="ignore")

    kind: Literal["exact", "ivf"] = "exact"
    refresh_s: float = Field(default=30.0, gt=0, le=DAY_S, allow_inf_nan=False)
    refresh_updates: int = Field(default=100_000, ge=1, le=1 << 40)
    nlist: int = Field(default=0, ge=0, le=1 << 20)
    nprobe: int = Field(default=16, ge=1, le=2048)
    # a CPU IVF of at least this many items is searched through PQ codes, then re-scored
    coded_from: int = Field(default=200_000, ge=0, le=1 << 40)


class CheckpointSettings(BaseSettings):
    """Where model state is kept, and how often it is written."""

    model_config = SettingsConfigDict(
        env_prefix="RECSTREAM_CHECKPOINT_", frozen=True, extra="ignore"
    )

    dir: Path | None = None  # unset: no checkpoints
    # Up to 1e9 s: "only at a clean stop" is a real choice, and it stays finite.
    interval_s: float = Field(default=60.0, gt=0, le=1e9, allow_inf_nan=False)

    @field_validator("dir", mode="before")
    @classmethod
    def _dir_named(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():  # Path("") would be the current directory
            raise ValueError("empty; name a directory, or leave it unset for no checkpoints")
        return value


class ScaleSettings(BaseSettings):
    """Scale-out: user state follows its partition, items are shared (worker/scale.py)."""

    model_config = SettingsConfigDict(env_prefix="RECSTREAM_", frozen=True, extra="ignore")

    scale_out: bool = False
    item_sync_s: float = Field(default=1.0, gt=0, le=3600, allow_inf_nan=False)
    state_flush_s: float = Field(default=10.0, gt=0, le=DAY_S, allow_inf_nan=False)
    # how often the item snapshot is written (a new worker reads it, not the feed's history)
    item_snapshot_s: float = Field(default=300.0, gt=0, le=DAY_S, allow_inf_nan=False)


class ControlSettings(BaseSettings):
    """Catalogue control (RECSTREAM_KAFKA_CONTROL_TOPIC): how soon stored lists lose an item."""

    model_config = SettingsConfigDict(env_prefix="RECSTREAM_CONTROL_", frozen=True, extra="ignore")

    # After a remove or ban, stored lists naming the item are rewritten by a sweep that
    # starts at once and should end within this (worker/catalogue/sweep.py); 0: no sweep.
    sweep_s: float = Field(default=10.0, ge=0, le=DAY_S, allow_inf_nan=False)
