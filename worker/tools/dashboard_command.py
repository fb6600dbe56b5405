"""`recstream dashboard`: the Grafana panels drawn from /metrics scrapes (`dashboard.py`)."""

from __future__ import annotations

from pathlib import Path

import click

from worker.commands.common import tool_logging


@click.command("dashboard")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("docs/img/dashboard.png"),
    show_default=True,
)
@click.option("--url", default=None, help="Scrape this /metrics URL instead of running a demo.")
@click.option("--duration", type=float, default=60.0, show_default=True, help="With --url.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds per scrape.")
@click.option("--events", type=int, default=60_000, show_default=True, help="Demo clicks.")
@click.option("--rate", type=float, default=1_000.0, show_default=True, help="Demo clicks/s.")
def dashboard(
    out: Path, url: str | None, duration: float, interval: float, events: int, rate: float
) -> None:
    """Draw the Grafana dashboard's panels from /metrics scrapes (of a demo by default)."""
    from worker.tools.dashboard import DashboardOptions, run_dashboard

    tool_logging("warning")
    report = run_dashboard(DashboardOptions(out, url, duration, interval, events, rate))
    click.echo(f"wrote {out} from {report['scrapes']} scrapes")
