"""One frozen, typed settings object read from `RECSTREAM_*` environment variables.

Split by concern so each component receives only its part (the parts live in
`worker.config.edges` and `worker.config.parts`). Built once, at the entry
point; nothing else in recstream reads the environment.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.config.edges import KafkaSettings, RedisSettings
from worker.config.limits import MAX_PORT, MAX_THREADS
from worker.config.parts import (
    CandidateSettings,
    CheckpointSettings,
    ControlSettings,
    EventSettings,
    IndexSettings,
    LoopSettings,
    ModelSettings,
    RankingSettings,
    RowSettings,
    ScaleSettings,
)
from worker.errors import SettingsError


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
    # torch's intra-op threads; 0: the CPUs this process may use (cgroup quota included).
    torch_threads: int = Field(default=0, ge=0, le=MAX_THREADS)
    # on a CPU, a large batch runs on one thread or on all, whichever measured cheaper lately
    torch_threads_tuned: bool = True
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


def _sections() -> dict[str, tuple[type[BaseSettings], str]]:
    """Each part of `Settings` and the prefix of its variables, read off the classes."""
    parts: dict[str, tuple[type[BaseSettings], str]] = {}
    for name, field in Settings.model_fields.items():
        cls = field.annotation
        if isinstance(cls, type) and issubclass(cls, BaseSettings):
            parts[name] = (cls, cls.model_config.get("env_prefix") or "")
    return parts


# Each part and the prefix of its variables; the rest of `Settings` is read as RECSTREAM_*.
SECTIONS = _sections()


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
