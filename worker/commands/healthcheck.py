"""`recstream healthcheck`: the local worker's /healthz (or /readyz) as an exit code."""

from __future__ import annotations

import sys

import click


@click.command("healthcheck")
@click.option("--port", type=int, default=None, help="Defaults to RECSTREAM_METRICS_PORT.")
@click.option("--ready", is_flag=True, help="Check /readyz instead of /healthz.")
def healthcheck(port: int | None, ready: bool) -> None:
    """Exit 0 when the local worker answers /healthz (or /readyz), else 1; bad settings: 2.

    An orchestrator runs this and keeps one line of what it printed, so a
    setting it cannot use is one line on stderr and exit 2, never a traceback.
    """
    import urllib.request

    if port is None:
        port = _port_from_settings()
    path = "/readyz" if ready else "/healthz"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            sys.exit(0 if resp.status == 200 else 1)  # noqa: PLR2004
    except OSError:
        sys.exit(1)


def _port_from_settings() -> int:
    """RECSTREAM_METRICS_PORT, or one line naming what is wrong and exit 2."""
    from worker.config.settings import load_settings
    from worker.errors import SettingsError

    try:
        port = load_settings().metrics_port
    except SettingsError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        click.echo(f"healthcheck: {lines[0]} {'; '.join(lines[1:])}".rstrip(), err=True)
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001  (whatever else settings raise: still one line)
        click.echo(f"healthcheck: cannot read the settings: {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)
    if port == 0:
        click.echo(
            "healthcheck: RECSTREAM_METRICS_PORT is 0 (metrics off): nothing to ask", err=True
        )
        sys.exit(2)
    return port
