"""librdkafka's log lines, through confluent-kafka's `logger` setting, become structlog events."""

from __future__ import annotations

import logging

import pytest
from structlog.testing import capture_logs

from worker.observability import logs
from worker.observability.logs import kafka_logger


def _line(text: str, level: int = logging.ERROR, facility: str = "FAIL") -> None:
    """Log as confluent-kafka does: the format and its three fields."""
    kafka_logger().log(level, "%s [%s] %s", facility, "rdkafka#producer-1", text)


def test_a_librdkafka_line_is_one_structured_event() -> None:
    """Facility, client and text become fields of `kafka_client_log`, at the line's level."""
    with capture_logs() as captured:
        _line("Connect to ipv4#127.0.0.1:1 failed: Connection refused (one)")
    assert captured == [
        {
            "event": "kafka_client_log",
            "log_level": "error",
            "facility": "FAIL",
            "client": "rdkafka#producer-1",
            "message": "Connect to ipv4#127.0.0.1:1 failed: Connection refused (one)",
        }
    ]


def test_a_repeated_line_is_counted_not_logged_again_within_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broker that is down repeats one line 20 times a second: logged once, then counted."""
    clock = [1000.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: clock[0])
    with capture_logs() as captured:
        for _ in range(20):
            _line("refused (two)")
            clock[0] += 0.05
        _line("another line (two)")
        clock[0] += logs.KAFKA_REPEAT_WINDOW_S
        _line("refused (two)")
    assert [(e["message"], e.get("repeated")) for e in captured] == [
        ("refused (two)", None),
        ("another line (two)", None),
        ("refused (two)", 19),
    ]
