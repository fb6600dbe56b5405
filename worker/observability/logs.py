"""structlog, configured once: JSON lines in production, a console renderer on a terminal."""

from __future__ import annotations

import logging
import sys
import threading
import time

import structlog


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    """Set up structlog for the process; `fmt` is `auto`, `json` or `console`."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if use_console:
        processors.append(structlog.dev.ConsoleRenderer())
    else:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


# -- librdkafka's own lines ---------------------------------------------------------------

KAFKA_REPEAT_WINDOW_S = 10.0  # an identical line again within this is counted, not logged


class _KafkaLines(logging.Handler):
    """Hands librdkafka's log lines to structlog as `kafka_client_log` events.

    confluent-kafka calls `logger.log(level, "%s [%s] %s", facility, client, text)`
    for each line when a `logger` is in a client's config (from the client's
    poll, consume or flush). A broker that is down makes librdkafka repeat the
    same line every reconnect backoff (about 20 a second), so a repeat within
    `KAFKA_REPEAT_WINDOW_S` is counted and the next one logged says how many.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], tuple[float, int]] = {}  # line -> (logged at, repeats)

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        facility, client, text = (
            (str(args[0]), str(args[1]), str(args[2]))
            if len(args) == 3  # noqa: PLR2004  (confluent-kafka's three fields)
            else ("", "", record.getMessage())
        )
        now = time.monotonic()
        with self._lock:
            logged_at, repeats = self._last.get((facility, text), (-KAFKA_REPEAT_WINDOW_S, 0))
            if now - logged_at < KAFKA_REPEAT_WINDOW_S:
                self._last[facility, text] = (logged_at, repeats + 1)
                return
            self._last[facility, text] = (now, 0)
            if len(self._last) > 1024:  # noqa: PLR2004  (bounded: old lines forgotten)
                self._last = {(facility, text): (now, 0)}
        fields: dict[str, object] = {"facility": facility, "client": client, "message": text}
        if repeats:
            fields["repeated"] = repeats
        structlog.get_logger("recstream.kafka").log(record.levelno, "kafka_client_log", **fields)


_KAFKA_LOGGER: logging.Logger | None = None


def kafka_logger() -> logging.Logger:
    """The stdlib logger for confluent-kafka's `logger` setting: its lines go through structlog.

    Without it librdkafka prints plain `%3|...|FAIL|...` lines on stderr between
    the worker's JSON lines.
    """
    global _KAFKA_LOGGER  # noqa: PLW0603  (one handler per process, made on first use)
    if _KAFKA_LOGGER is None:
        logger = logging.getLogger("recstream.librdkafka")
        logger.setLevel(logging.DEBUG)  # structlog's level filter decides
        logger.propagate = False
        logger.addHandler(_KafkaLines())
        _KAFKA_LOGGER = logger
    return _KAFKA_LOGGER
