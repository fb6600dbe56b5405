"""One frozen, typed settings object read from `RECSTREAM_*` environment variables.

Split by concern so each component receives only its part. Built once, at the
entry point; nothing else in recstream reads the environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stream.events import MAX_WEIGHT
from worker.candidate_names import GROUPS, SOURCES
from worker.errors import SettingsError
from worker.logs import kafka_logger

# One search fetches top_k + seen_history candidates, and FAISS GPU's k-selection stops at 2048.
MAX_SEARCH_K = 2048
# Finite upper bounds for durations: no setting may be infinite, and none needs more than these.
DAY_S = 24 * 3600
TEN_YEARS_S = 10 * 365 * DAY_S
MAX_PORT = 65535
# Kafka's own rule for topic names.
_TOPIC_NAME = r"^[A-Za-z0-9._-]{1,249}$"


def _host_port(text: str) -> bool:
    """Whether `text` is `host:port` with a port in 1..65535."""
    host, _, port = text.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) <= MAX_PORT


class KafkaSettings(BaseSettings):
    """Where clicks come from and where bad ones go."""

    model_config = SettingsConfigDict(env_prefix="RECSTREAM_KAFKA_", frozen=True, extra="ignore")

    bootstrap: str = "localhost:9092"
    topic: str = Field(default="clicks", pattern=_TOPIC_NAME)
    dlq_topic: str = Field(default="clicks.dlq", pattern=_TOPIC_NAME)
    group: str = Field(default="recstream", min_length=1, max_length=255)
    create_topics: bool = True
    topic_partitions: int = Field(default=12, ge=1, le=10_000)
    # librdkafka's own ranges, checked here so the error names the variable.
    session_timeout_ms: int = Field(default=10_000, ge=1_000, le=3_600_000)
    fetch_wait_max_ms: int = Field(default=10, ge=0, le=300_000)
    # The largest fetch response the consumer takes (librdkafka's default); a record above it
    # cannot be fetched and is dead-lettered by its metadata, then skipped (stream/oversize.py).
    receive_message_max_bytes: int = Field(default=100_000_000, ge=4096, le=2_147_483_647)
    # Cooperative: a rebalance moves only the partitions that change owner (only their users
    # are handed over); the others are never revoked. The members of a group must agree, and
    # librdkafka cannot list an eager and a cooperative one together for a rolling change:
    # switch a group with its workers stopped (or start a new group).
    assignment_strategy: Literal["cooperative-sticky", "range", "roundrobin"] = "cooperative-sticky"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: (
        Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER"] | None
    ) = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    # scale-out (RECSTREAM_SCALE_OUT): unset, `{topic}.state` and `{topic}.items`
    state_topic: str | None = Field(default=None, pattern=_TOPIC_NAME)
    items_topic: str | None = Field(default=None, pattern=_TOPIC_NAME)
    # catalogue control (`{"op": "remove"|"restore"|"ban", "item": ...}`); empty: none
    control_topic: str = Field(default="", pattern=f"^$|{_TOPIC_NAME}")

    @field_validator("topic", "dlq_topic", "state_topic", "items_topic", "control_topic")
    @classmethod
    def _not_dots(cls, value: str | None) -> str | None:
        # Kafka's rule beyond the characters (the pattern): "." and ".." are refused.
        if value in (".", ".."):
            raise ValueError("'.' and '..' are not legal Kafka topic names")
        return value

    @property
    def state_topic_name(self) -> str:
        """The partition-aligned user-state topic."""
        return self.state_topic or f"{self.topic}.state"

    @property
    def items_topic_name(self) -> str:
        """The item feed."""
        return self.items_topic or f"{self.topic}.items"

    @property
    def items_snapshot_topic_name(self) -> str:
        """The item snapshot beside the feed (records on partition 0, markers on 1)."""
        return f"{self.items_topic_name}.snapshot"

    @model_validator(mode="after")
    def _sync_topics_apart(self) -> KafkaSettings:
        names = [
            self.topic,
            self.dlq_topic,
            self.state_topic_name,
            self.items_topic_name,
            self.items_snapshot_topic_name,
        ]
        if self.topic != self.dlq_topic and len(set(names)) != len(names):
            raise ValueError(
                "RECSTREAM_KAFKA_STATE_TOPIC and RECSTREAM_KAFKA_ITEMS_TOPIC must differ from "
                "each other, RECSTREAM_KAFKA_TOPIC and RECSTREAM_KAFKA_DLQ_TOPIC "
                f"(got {', '.join(names)})"
            )
        return self

    @field_validator("bootstrap")
    @classmethod
    def _hosts_with_ports(cls, value: str) -> str:
        hosts = [h.strip() for h in value.split(",") if h.strip()]
        if not hosts or not all(_host_port(h) for h in hosts):
            raise ValueError("expected host:port[,host:port...] with ports 1..65535")
        return ",".join(hosts)

    @model_validator(mode="after")
    def _control_apart(self) -> KafkaSettings:
        if self.control_topic in (self.topic, self.dlq_topic):
            raise ValueError(
                "RECSTREAM_KAFKA_CONTROL_TOPIC must differ from RECSTREAM_KAFKA_TOPIC and "
                f"RECSTREAM_KAFKA_DLQ_TOPIC (got {self.control_topic!r})"
            )
        return self

    @model_validator(mode="after")
    def _dlq_apart(self) -> KafkaSettings:
        if self.topic == self.dlq_topic:
            raise ValueError(
                "RECSTREAM_KAFKA_TOPIC and RECSTREAM_KAFKA_DLQ_TOPIC must differ "
                f"(both {self.topic!r}: dead letters would be read again)"
            )
        return self

    def client_config(self) -> dict[str, object]:
        """Librdkafka settings shared by the consumer, producers and admin client.

        With confluent-kafka's `logger`: librdkafka's own lines become structlog
        events (`kafka_client_log`), served by each client's poll, not printed.
        """
        config: dict[str, object] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol,
            "logger": kafka_logger(),
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            config["ssl.ca.location"] = self.ssl_ca_location
        return config

    def consumer_config(self) -> dict[str, object]:
        """Consumer-group settings on top of the client ones.

        librdkafka wants `fetch.max.bytes` at least 512 under the receive limit
        and `message.max.bytes` (and the per-partition fetch) no more than it:
        their defaults, lowered to fit under a lower limit.
        """
        receive = self.receive_message_max_bytes
        fetch = min(52_428_800, receive - 512)
        return {
            **self.client_config(),
            "group.id": self.group,
            "session.timeout.ms": self.session_timeout_ms,
            "fetch.wait.max.ms": self.fetch_wait_max_ms,
            "partition.assignment.strategy": self.assignment_strategy,
            "receive.message.max.bytes": receive,
            "fetch.max.bytes": fetch,
            "message.max.bytes": min(1_000_000, fetch),
            "max.partition.fetch.bytes": min(1_048_576, fetch),
        }


class RedisSettings(BaseSettings):
    """Where lists are published."""

    model_config = SettingsConfigDict(env_prefix="RECSTREAM_REDIS_", frozen=True, extra="ignore")

    url: SecretStr = SecretStr("redis://localhost:6379/0")
    password: SecretStr | None = None
    # Never empty: every key a user id can name starts with it (README, "Redis contract").
    prefix: str = Field(default="rec:", min_length=1, max_length=256)
    cold_start_key: str = Field(default="recstream:cold_start", max_length=512)
    ttl_s: int = Field(default=7 * 24 * 3600, ge=1, le=TEN_YEARS_S)
    timeout_s: float = Field(default=5.0, gt=0, le=300, allow_inf_nan=False)
    cluster: bool = False  # the URL names one node of a Redis Cluster

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: SecretStr) -> SecretStr:
        # Messages never repeat the URL: it may hold a password.
        url = value.get_secret_value()
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        parts = urlsplit(url)
        try:
            _ = parts.port  # raises on a non-numeric or out-of-range port
        except ValueError:
            raise ValueError("the port must be a number in 1..65535") from None
        dbs = parse_qs(parts.query).get("db", [])
        if parts.scheme != "unix" and parts.path not in ("", "/"):
            dbs.append(parts.path.removeprefix("/"))
        if any(not db.isdigit() for db in dbs):
            raise ValueError("the database must be a number (redis://host:port/N)")
        return value

    @model_validator(mode="after")
    def _cold_start_apart(self) -> RedisSettings:
        if self.cold_start_key.startswith(self.prefix):
            raise ValueError(
                "RECSTREAM_REDIS_COLD_START_KEY must not start with RECSTREAM_REDIS_PREFIX "
                f"({self.cold_start_key!r} starts with {self.prefix!r}): a user id could name it"
            )
        return self


# Unset RECSTREAM_NEGATIVES: all of a small catalogue on a GPU, a cheaper batch on a CPU.
GPU_NEGATIVES = 2048
CPU_NEGATIVES = 128


def default_negatives(device_type: str) -> int:
    """Negatives per batch when RECSTREAM_NEGATIVES is unset, for a torch device type."""
    return GPU_NEGATIVES if device_type == "cuda" else CPU_NEGATIVES


class ModelSettings(BaseSettings):
    """The online learner: exactly the fields of `models.learner.LearnerConfig`."""

    model_config = SettingsConfigDict(env_prefix="RECSTREAM_", frozen=True, extra="ignore")

    dim: int = Field(default=64, ge=2, le=4096)
    learning_rate: float = Field(default=0.03, gt=0, le=10)
    # Unset: `default_negatives` of the device the worker runs on.
    negatives: int | None = Field(default=None, ge=1, le=65_536)
    l2: float = Field(default=1e-4, ge=0, le=1)
    recent_items: int = Field(default=16, ge=0, le=1024)
    popularity_weight: float = Field(default=0.5, ge=0, le=100)
    popularity_tau: float = Field(default=3600.0, gt=0, le=1e9, allow_inf_nan=False)
    popularity_clock: Literal["events", "time"] = "time"
    bias_decay: float = Field(default=0.9, ge=0, lt=1)
    transition_slots: int = Field(default=256, ge=0, le=4096)
    transition_window: int = Field(default=16, ge=1, le=1024)
    transition_decay: float = Field(default=0.9, gt=0, le=1)
    covisit_slots: int = Field(default=32, ge=1, le=4096)
    covisit_half_life: float = Field(default=1e6, gt=0, le=1e15, allow_inf_nan=False)
    seed: int = Field(default=0, ge=0, le=(1 << 63) - 1)

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

    vector: int = Field(default=100, ge=1, le=MAX_SEARCH_K)
    covisit: int = Field(default=50, ge=1, le=MAX_SEARCH_K)
    successors: int = Field(default=50, ge=1, le=MAX_SEARCH_K)
    trending: int = Field(default=60, ge=1, le=MAX_SEARCH_K)
    cold: int = Field(default=50, ge=1, le=MAX_SEARCH_K)
    cold_max_clicks: int = Field(default=5, ge=0, le=1 << 40)
    window: int = Field(default=4, ge=1, le=1024)
    sources: Annotated[tuple[str, ...], NoDecode] = SOURCES
    ranker_drop: Annotated[tuple[str, ...], NoDecode] = ()
    ranker_hidden: int = Field(default=16, ge=0, le=1024)
    ranker_learning_rate: float = Field(default=0.01, gt=0, le=10, allow_inf_nan=False)
    ranker_train_events: int = Field(default=64, ge=1, le=65_536)
    next_weight: float = Field(default=1.0, gt=0, le=1, allow_inf_nan=False)

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
    # Unset: `worker.batching.default_batch_max` of the device (a backlog grows batches to it).
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
    # starts at once and should end within this (worker/sweep.py); 0: no sweep.
    sweep_s: float = Field(default=10.0, ge=0, le=DAY_S, allow_inf_nan=False)


class Settings(BaseSettings):
    """Everything the worker needs, validated at start: one part per component.

    Every part keeps the flat variable names (`RECSTREAM_BATCH_SIZE` is
    `settings.loop.batch_size`): deployments name variables, not sections.
    """

    model_config = SettingsConfigDict(env_prefix="RECSTREAM_", frozen=True, extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    ranking: RankingSettings = Field(default_factory=RankingSettings)
    candidates: CandidateSettings = Field(default_factory=CandidateSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    rows: RowSettings = Field(default_factory=RowSettings)
    loop: LoopSettings = Field(default_factory=LoopSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    checkpoint: CheckpointSettings = Field(default_factory=CheckpointSettings)
    scale: ScaleSettings = Field(default_factory=ScaleSettings)
    control: ControlSettings = Field(default_factory=ControlSettings)

    # the process itself
    device: str = "auto"
    metrics_port: int = Field(default=9108, ge=0, le=MAX_PORT)
    # GET /debug/users/<id> on the metrics port: user ids and their clicks, so off by default.
    debug_endpoint: bool = False
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    startup_timeout_s: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
            return value
        raise ValueError("expected auto, cpu, cuda or cuda:N")


# Each part and the prefix of its variables; the rest of `Settings` is read as RECSTREAM_*.
SECTIONS: dict[str, tuple[type[BaseSettings], str]] = {
    "kafka": (KafkaSettings, "RECSTREAM_KAFKA_"),
    "redis": (RedisSettings, "RECSTREAM_REDIS_"),
    "model": (ModelSettings, "RECSTREAM_"),
    "ranking": (RankingSettings, "RECSTREAM_"),
    "candidates": (CandidateSettings, "RECSTREAM_CANDIDATES_"),
    "events": (EventSettings, "RECSTREAM_"),
    "rows": (RowSettings, "RECSTREAM_"),
    "loop": (LoopSettings, "RECSTREAM_"),
    "index": (IndexSettings, "RECSTREAM_INDEX_"),
    "checkpoint": (CheckpointSettings, "RECSTREAM_CHECKPOINT_"),
    "scale": (ScaleSettings, "RECSTREAM_"),
    "control": (ControlSettings, "RECSTREAM_CONTROL_"),
}


def variables() -> dict[str, tuple[str | None, str]]:
    """Every `RECSTREAM_*` variable, mapped to its part (None: the top level) and field."""
    names: dict[str, tuple[str | None, str]] = {}
    for section, (cls, prefix) in SECTIONS.items():
        names |= {prefix + field.upper(): (section, field) for field in cls.model_fields}
    names |= {
        "RECSTREAM_" + field.upper(): (None, field)
        for field in Settings.model_fields
        if field not in SECTIONS
    }
    return names


def with_values(settings: Settings, **values: object) -> Settings:
    """`settings` with some variables changed, named as in the environment, lower case.

    `with_values(s, batch_size=128, index_kind="ivf")` sets RECSTREAM_BATCH_SIZE
    and RECSTREAM_INDEX_KIND; each changed part is validated again.
    """
    where = {name.removeprefix("RECSTREAM_").lower(): spot for name, spot in variables().items()}
    unknown = sorted(set(values) - set(where))
    if unknown:
        raise TypeError(f"no such setting: {', '.join(unknown)}")
    top: dict[str, object] = {}
    parts: dict[str, dict[str, object]] = {}
    for name, value in values.items():
        section, field = where[name]
        if section is None:
            top[field] = value
        else:
            parts.setdefault(section, {})[field] = value
    for section, fields in parts.items():
        part = getattr(settings, section)
        top[section] = type(part).model_validate({**dict(part), **fields})
    return Settings.model_validate({**dict(settings), **top})


def _describe(error: ValidationError, prefix: str) -> list[str]:
    lines = []
    for problem in error.errors():
        loc = [str(part) for part in problem["loc"]]
        message = problem["msg"].removeprefix("Value error, ")
        if not loc:  # a check across settings: its message names them
            lines.append(message)
            continue
        # The first part is the field (the variable); the rest lie inside its value, such as
        # a key of RECSTREAM_EVENT_WEIGHTS, and are named as such, never as a variable.
        name = prefix + loc[0].upper()
        if loc[1:]:
            message = f"at {'.'.join(loc[1:])!r}: {message}"
        value = problem.get("input")
        secret = "PASSWORD" in name or "URL" in name
        shown = "" if secret else f" (got {value!r})"
        lines.append(f"{name}: {message}{shown}")
    return lines


def load_settings() -> Settings:
    """Read and validate the environment; `SettingsError` names every bad variable."""
    problems: list[str] = []
    sections: dict[str, BaseSettings] = {}
    for field, (cls, prefix) in SECTIONS.items():
        try:
            sections[field] = cls()
        except ValidationError as exc:
            problems += _describe(exc, prefix)
    # Validate the top level too, with unvalidated stand-ins for failed sections, so one
    # run names every bad variable.
    parts: dict[str, Any] = {field: cls.model_construct() for field, (cls, _) in SECTIONS.items()}
    try:
        settings = Settings(**{**parts, **sections})
    except ValidationError as exc:
        problems += _describe(exc, "RECSTREAM_")
    else:
        if not problems:
            return settings
    raise SettingsError("invalid configuration:\n  " + "\n  ".join(problems))
