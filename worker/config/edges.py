"""The settings of the edges: where clicks come from (Kafka) and where lists go (Redis).

Parts of `worker.config.settings.Settings`, read from `RECSTREAM_KAFKA_*` and `RECSTREAM_REDIS_*`.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.config.limits import MAX_PORT, TEN_YEARS_S
from worker.observability.logs import kafka_logger

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
