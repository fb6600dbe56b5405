"""Unit tests for `worker.settings.load_settings`: defaults, errors that name variables, secrets."""

from __future__ import annotations

import os

import pytest

from worker.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every `RECSTREAM_*` variable the outer environment may set."""
    for name in list(os.environ):
        if name.upper().startswith("RECSTREAM_"):
            monkeypatch.delenv(name)


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
    assert settings.top_k == 50
    assert settings.device == "auto"
    assert settings.metrics_port == 9108
    assert settings.event_weights == {}
    assert (settings.max_users, settings.max_items) == (1_000_000, 1_000_000)
    assert (settings.id_ttl_s, settings.min_occurrences) == (0.0, 1)
    assert settings.kafka.client_config() == {
        "bootstrap.servers": "localhost:9092",
        "security.protocol": "PLAINTEXT",
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
    assert settings.top_k == 20
    assert settings.device == "cuda:1"
    assert settings.event_weights == {"click": 1.0, "buy": 5.5}
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
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """A bad value raises `SettingsError` whose message names the variable."""
    message = _error(monkeypatch, **{name: value})
    assert f"{name}:" in message


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
    from worker.settings import KafkaSettings, RedisSettings, Settings

    names = {f"RECSTREAM_KAFKA_{f.upper()}" for f in KafkaSettings.model_fields}
    names |= {f"RECSTREAM_REDIS_{f.upper()}" for f in RedisSettings.model_fields}
    names |= {
        f"RECSTREAM_{f.upper()}" for f in Settings.model_fields if f not in {"kafka", "redis"}
    }
    return names


def test_readme_documents_exactly_the_settings_that_exist() -> None:
    """Every setting is in the README's table, and the README names no setting that is not real."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    documented = set(re.findall(r"`(RECSTREAM_[A-Z0-9_]+)`", readme))
    assert documented == _env_names()
