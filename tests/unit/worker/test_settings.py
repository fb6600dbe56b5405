"""Unit tests for `worker.config.settings.load_settings`: defaults, errors naming variables."""

from __future__ import annotations

import pytest

from worker.config.settings import load_settings
from worker.errors import SettingsError
from worker.observability.logs import kafka_logger

pytestmark = pytest.mark.usefixtures("clean_env")  # tests/unit/worker/conftest.py


def _error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    return str(caught.value)


def test_defaults() -> None:
    """With no variables set, every setting has its documented default."""
    settings = load_settings()
    assert settings.kafka.bootstrap == "localhost:9092"
    assert settings.kafka.topic == "clicks"
    assert settings.kafka.dlq_topic == "clicks.dlq"
    assert settings.kafka.group == "recstream"
    assert settings.redis.url.get_secret_value() == "redis://localhost:6379/0"
    assert settings.redis.prefix == "rec:"
    assert settings.ranking.top_k == 50
    assert settings.device == "auto"
    assert settings.metrics_port == 9108
    assert settings.events.event_weights == {}
    assert (settings.rows.max_users, settings.rows.max_items) == (1_000_000, 1_000_000)
    assert (settings.rows.id_ttl_s, settings.rows.min_occurrences) == (0.0, 1)
    assert settings.loop.batch_size == 4096
    assert settings.index.kind == "exact"
    assert settings.checkpoint.dir is None
    assert settings.kafka.client_config() == {
        "bootstrap.servers": "localhost:9092",
        "security.protocol": "PLAINTEXT",
        "logger": kafka_logger(),  # librdkafka's lines go through structlog
    }


def test_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set variables are read, typed and normalised."""
    monkeypatch.setenv("RECSTREAM_KAFKA_BOOTSTRAP", " a:1 , b:2 ,")
    monkeypatch.setenv("RECSTREAM_KAFKA_TOPIC", "events")
    monkeypatch.setenv("RECSTREAM_TOP_K", "20")
    monkeypatch.setenv("RECSTREAM_DEVICE", "cuda:1")
    monkeypatch.setenv("RECSTREAM_EVENT_WEIGHTS", '{"click": 1, "buy": 5.5}')
    monkeypatch.setenv("RECSTREAM_REDIS_PREFIX", "r:")
    settings = load_settings()
    assert settings.kafka.bootstrap == "a:1,b:2"
    assert settings.kafka.topic == "events"
    assert settings.ranking.top_k == 20
    assert settings.device == "cuda:1"
    assert settings.events.event_weights == {"click": 1.0, "buy": 5.5}
    assert settings.redis.prefix == "r:"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECSTREAM_TOP_K", "0"),
        ("RECSTREAM_DEVICE", "gpu"),
        ("RECSTREAM_KAFKA_BOOTSTRAP", "nohostport"),
        ("RECSTREAM_REDIS_URL", "http://x"),
        ("RECSTREAM_EVENT_WEIGHTS", '{"click": -1}'),
        ("RECSTREAM_EVENT_WEIGHTS", "notjson"),
        ("RECSTREAM_BATCH_SIZE", "abc"),
        ("RECSTREAM_MAX_USERS", "0"),
        ("RECSTREAM_MAX_ITEMS", "-5"),
        ("RECSTREAM_ID_TTL_S", "-1"),
        ("RECSTREAM_ID_TTL_S", "inf"),
        ("RECSTREAM_MIN_OCCURRENCES", "0"),
        # accepted once, broken at run time (issue 10, item 7)
        ("RECSTREAM_L2", "inf"),
        ("RECSTREAM_REDIS_TIMEOUT_S", "inf"),
        ("RECSTREAM_SEED", str(2**70)),
        ("RECSTREAM_KAFKA_SESSION_TIMEOUT_MS", "99999999"),
        ("RECSTREAM_KAFKA_FETCH_WAIT_MAX_MS", "999999"),
        ("RECSTREAM_REDIS_URL", "redis://127.0.0.1:abc/0"),
        ("RECSTREAM_REDIS_URL", "redis://127.0.0.1:99999/0"),
        ("RECSTREAM_REDIS_URL", "redis://127.0.0.1/notadb"),
        ("RECSTREAM_REDIS_URL", "redis://127.0.0.1:6379?db=x"),
        ("RECSTREAM_KAFKA_BOOTSTRAP", "broker:notaport"),
        ("RECSTREAM_KAFKA_BOOTSTRAP", ":9092"),
        ("RECSTREAM_KAFKA_TOPIC", "two words"),
        ("RECSTREAM_KAFKA_SASL_MECHANISM", "MAGIC"),
        ("RECSTREAM_REDIS_PREFIX", ""),
        ("RECSTREAM_STARTUP_TIMEOUT_S", "0"),
        ("RECSTREAM_MAX_EVENT_WEIGHT", "0.5"),
        ("RECSTREAM_MAX_CLOCK_SKEW_S", "-1"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """A bad value raises `SettingsError` whose message names the variable."""
    message = _error(monkeypatch, **{name: value})
    assert f"{name}:" in message


def _fields(kind: type) -> list[str]:
    from worker.config.settings import SECTIONS, Settings, variables

    names = []
    for name, (section, field) in variables().items():
        model = Settings if section is None else SECTIONS[section][0]
        annotation = model.model_fields[field].annotation
        if annotation in (kind, kind | None) and annotation is not bool:
            names.append(name)
    return names


@pytest.mark.parametrize("name", _fields(float))
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_no_float_setting_takes_a_non_finite_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """Every float setting refuses inf and nan at start, naming the variable."""
    assert f"{name}:" in _error(monkeypatch, **{name: value})


@pytest.mark.parametrize("name", _fields(int))
def test_no_int_setting_is_unbounded(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Every integer setting has a finite upper bound: 2**70 is refused, naming the variable."""
    assert f"{name}:" in _error(monkeypatch, **{name: str(2**70)})


def test_a_bad_value_inside_a_json_setting_names_the_real_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad weight in RECSTREAM_EVENT_WEIGHTS names that variable and the key, no made-up one."""
    message = _error(monkeypatch, RECSTREAM_EVENT_WEIGHTS='{"click": "x"}')
    assert "RECSTREAM_EVENT_WEIGHTS:" in message
    assert "'click'" in message
    assert "RECSTREAM_EVENT_WEIGHTS_CLICK" not in message


def test_the_cold_start_key_may_not_start_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold-start key under the prefix is refused: a user id could name it."""
    message = _error(
        monkeypatch, RECSTREAM_REDIS_PREFIX="rec:", RECSTREAM_REDIS_COLD_START_KEY="rec:cold"
    )
    assert "RECSTREAM_REDIS_COLD_START_KEY" in message
    assert "RECSTREAM_REDIS_PREFIX" in message


def test_an_empty_cold_start_key_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty cold-start key still means "no cold-start list", whatever the prefix."""
    monkeypatch.setenv("RECSTREAM_REDIS_COLD_START_KEY", "")
    assert load_settings().redis.cold_start_key == ""


def test_the_dlq_topic_must_differ_from_the_input_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dead letters into the input topic would be read again: refused, naming both."""
    message = _error(monkeypatch, RECSTREAM_KAFKA_TOPIC="t", RECSTREAM_KAFKA_DLQ_TOPIC="t")
    assert "RECSTREAM_KAFKA_TOPIC" in message
    assert "RECSTREAM_KAFKA_DLQ_TOPIC" in message


def test_type_weights_may_not_exceed_the_max_event_weight(monkeypatch: pytest.MonkeyPatch) -> None:
    """A type weight above RECSTREAM_MAX_EVENT_WEIGHT is refused, naming both variables."""
    message = _error(
        monkeypatch, RECSTREAM_EVENT_WEIGHTS='{"buy": 50}', RECSTREAM_MAX_EVENT_WEIGHT="20"
    )
    assert "RECSTREAM_EVENT_WEIGHTS" in message
    assert "RECSTREAM_MAX_EVENT_WEIGHT" in message


def test_redis_urls_with_a_database_or_a_socket_are_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Numeric databases in the path or the query, and unix sockets, pass the URL check."""
    for url in (
        "redis://h:6379",
        "redis://h:6379/",
        "rediss://u:p@h:6380/15",
        "redis://h?db=3",
        "unix:///run/redis.sock?db=2",
    ):
        monkeypatch.setenv("RECSTREAM_REDIS_URL", url)
        assert load_settings().redis.url.get_secret_value() == url


def test_cross_setting_check_names_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """top_k + seen_history past the search limit names both variables."""
    message = _error(monkeypatch, RECSTREAM_TOP_K="1000", RECSTREAM_SEEN_HISTORY="1500")
    assert "RECSTREAM_TOP_K" in message
    assert "RECSTREAM_SEEN_HISTORY" in message


def test_every_bad_section_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad Kafka and Redis variables are reported together, not one per run."""
    message = _error(
        monkeypatch, RECSTREAM_KAFKA_BOOTSTRAP="nohostport", RECSTREAM_REDIS_URL="http://x"
    )
    assert "RECSTREAM_KAFKA_BOOTSTRAP" in message
    assert "RECSTREAM_REDIS_URL" in message


def test_secrets_stay_out_of_repr_and_str(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SASL password and a password in the Redis URL are never shown."""
    monkeypatch.setenv("RECSTREAM_KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("RECSTREAM_REDIS_URL", "redis://default:s3cr3tpw@cache:6379/0")
    monkeypatch.setenv("RECSTREAM_REDIS_PASSWORD", "0th3rpw")
    settings = load_settings()
    for text in (repr(settings), str(settings), repr(settings.kafka), repr(settings.redis)):
        assert "hunter2" not in text
        assert "s3cr3tpw" not in text
        assert "0th3rpw" not in text
    assert settings.redis.url.get_secret_value() == "redis://default:s3cr3tpw@cache:6379/0"


def test_bad_redis_url_with_password_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rejected Redis URL is named in the error, but its password is not shown."""
    message = _error(monkeypatch, RECSTREAM_REDIS_URL="http://admin:t0ps3cr3t@cache:6379")
    assert "RECSTREAM_REDIS_URL" in message
    assert "t0ps3cr3t" not in message


def test_client_config_carries_sasl(monkeypatch: pytest.MonkeyPatch) -> None:
    """SASL settings, when set, reach the librdkafka client configuration."""
    monkeypatch.setenv("RECSTREAM_KAFKA_BOOTSTRAP", "broker:9093")
    monkeypatch.setenv("RECSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("RECSTREAM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("RECSTREAM_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("RECSTREAM_KAFKA_SASL_PASSWORD", "hunter2")
    settings = load_settings()
    assert settings.kafka.client_config() == {
        "bootstrap.servers": "broker:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "hunter2",
        "logger": kafka_logger(),
    }
    consumer = settings.kafka.consumer_config()
    assert consumer["sasl.password"] == "hunter2"
    assert consumer["group.id"] == "recstream"


def test_a_bad_section_does_not_hide_other_bad_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad Kafka setting and a bad top-level one are both named in one error."""
    monkeypatch.setenv("RECSTREAM_KAFKA_BOOTSTRAP", "nohostport")
    monkeypatch.setenv("RECSTREAM_TOP_K", "0")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "RECSTREAM_KAFKA_BOOTSTRAP" in str(err.value)
    assert "RECSTREAM_TOP_K" in str(err.value)


def _env_names() -> set[str]:
    from worker.config.settings import variables

    return set(variables())


def test_readme_documents_exactly_the_settings_that_exist() -> None:
    """Every setting is in the README's table, and the README names no setting that is not real."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    documented = set(re.findall(r"`(RECSTREAM_[A-Z0-9_]+)`", readme))
    assert documented == _env_names()


def test_the_scale_out_topics_must_differ_from_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """A state topic named like the input would mix user state into the clicks: refused."""
    message = _error(monkeypatch, RECSTREAM_KAFKA_TOPIC="t", RECSTREAM_KAFKA_STATE_TOPIC="t")
    assert "RECSTREAM_KAFKA_STATE_TOPIC" in message


def test_scale_out_intervals_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A zero item-sync interval is refused, naming the variable."""
    assert "RECSTREAM_ITEM_SYNC_S" in _error(monkeypatch, RECSTREAM_ITEM_SYNC_S="0")
    assert "RECSTREAM_STATE_FLUSH_S" in _error(monkeypatch, RECSTREAM_STATE_FLUSH_S="inf")


def test_each_part_reads_its_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each part of the settings reads the flat variables it always read."""
    for name, value in {
        "RECSTREAM_BATCH_SIZE": "128",
        "RECSTREAM_DIM": "32",
        "RECSTREAM_INDEX_KIND": "ivf",
        "RECSTREAM_INDEX_NPROBE": "4",
        "RECSTREAM_CHECKPOINT_DIR": "ck",
        "RECSTREAM_CHECKPOINT_INTERVAL_S": "5",
        "RECSTREAM_MAX_USERS": "10",
        "RECSTREAM_SEEN_HISTORY": "7",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.loop.batch_size == 128
    assert settings.model.dim == 32
    assert (settings.index.kind, settings.index.nprobe) == ("ivf", 4)
    assert str(settings.checkpoint.dir) == "ck"
    assert settings.checkpoint.interval_s == 5
    assert settings.rows.max_users == 10
    assert settings.ranking.seen_history == 7


def test_sections_carry_their_own_prefixes() -> None:
    """`SECTIONS` is read off `Settings`: every part, with the prefix its class reads."""
    from pydantic_settings import BaseSettings

    from worker.config.settings import SECTIONS, Settings

    parts = {
        name: field.annotation
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings)
    }
    assert {name: cls for name, (cls, _) in SECTIONS.items()} == parts
    assert SECTIONS["kafka"][1] == "RECSTREAM_KAFKA_"
    assert SECTIONS["model"][1] == "RECSTREAM_"
    assert all(prefix == cls.model_config["env_prefix"] for cls, prefix in SECTIONS.values())


def test_with_values_validates_and_names_unknown_settings() -> None:
    """`with_values` sets variables in their parts and validates them; unknown names are refused."""
    from pydantic import ValidationError

    from worker.config.settings import Settings, with_values

    base = Settings()
    changed = with_values(base, batch_size=7, index_kind="ivf", kafka_topic="t", top_k=3)
    assert (changed.loop.batch_size, changed.index.kind) == (7, "ivf")
    assert (changed.kafka.topic, changed.ranking.top_k) == ("t", 3)
    assert changed.model == base.model
    with pytest.raises(ValidationError):
        with_values(base, batch_size=0)
    with pytest.raises(TypeError, match="no_such"):
        with_values(base, no_such=1)


@pytest.mark.parametrize(
    "name",
    [
        "RECSTREAM_KAFKA_TOPIC",
        "RECSTREAM_KAFKA_DLQ_TOPIC",
        "RECSTREAM_KAFKA_STATE_TOPIC",
        "RECSTREAM_KAFKA_ITEMS_TOPIC",
        "RECSTREAM_KAFKA_CONTROL_TOPIC",
    ],
)
@pytest.mark.parametrize("value", [".", ".."])
def test_dot_and_dot_dot_are_refused_as_topic_names(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """Kafka refuses the topic names '.' and '..' although their characters are legal."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"{name}: '.' and '..' are not legal"):
        load_settings()
