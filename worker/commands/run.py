"""`recstream run`: the service, until SIGTERM, with its metrics and health port."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from worker.commands.common import configure_logging, log, settings_or_exit

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from worker.loop.batch_loop import Worker
    from worker.observability.metrics import HealthServer


@click.command("run")
def run() -> None:
    """Run the worker until SIGTERM (settings from RECSTREAM_* variables)."""
    settings = settings_or_exit()
    configure_logging(settings.log_format, settings.log_level)
    from recstream.errors import RecstreamError
    from worker.app import build_worker
    from worker.errors import StartupError
    from worker.observability.metrics import HealthServer, WorkerMetrics

    metrics = WorkerMetrics()
    health = None
    if settings.metrics_port:
        try:  # bound before anything else starts: a port in use is a bad start, not a traceback
            health = HealthServer(settings.metrics_port, metrics)
        except OSError as exc:
            log().error(
                "startup_failed",
                error=f"cannot listen on port {settings.metrics_port}: {exc.strerror or exc}",
                variable="RECSTREAM_METRICS_PORT",
            )
            sys.exit(2)
    try:
        worker = build_worker(settings, metrics)
    except StartupError as exc:
        log().error("startup_failed", error=str(exc), **exc.fields)
        _close(health)
        sys.exit(2)
    except RecstreamError as exc:  # a known failure: one line, its message says what to fix
        log().error("startup_failed", error=str(exc), error_type=type(exc).__name__)
        _close(health)
        sys.exit(2)
    metrics.watch_device(worker.engine.device)
    if health:
        debug = _user_reader(worker) if settings.debug_endpoint else None
        health.start(worker.live, worker.ready, debug)
        log().info("metrics_listening", port=health.port, debug_endpoint=debug is not None)
    try:
        code = worker.run()
    except RecstreamError as exc:
        log().exception("worker_failed", error=str(exc))
        code = 1
    finally:
        _close(health)
    sys.exit(code)


def _user_reader(worker: Worker) -> Callable[[str], dict[str, Any] | None]:
    """`/debug/users/<id>`: the worker's live state of one user (read-only)."""
    from worker.observability.debug import describe_user

    return lambda user: describe_user(worker.learner, user)


def _close(health: HealthServer | None) -> None:
    if health is not None:
        health.close()
