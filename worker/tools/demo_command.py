"""`recstream demo`: synthetic clicks through a worker on embedded servers (`demo.py`)."""

from __future__ import annotations

import json
import sys

import click

from worker.commands.common import tool_logging


@click.command("demo")
@click.option("--events", type=int, default=100_000, show_default=True)
@click.option("--users", type=int, default=5_000, show_default=True)
@click.option("--items", type=int, default=2_000, show_default=True)
@click.option("--rate", type=float, default=10_000, show_default=True, help="0 = flat out.")
@click.option("--kafka", default=None, help="Use this broker instead of an embedded one.")
@click.option("--redis", default=None, help="Use this Redis URL instead of an embedded one.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON line.")
def demo(
    events: int,
    users: int,
    items: int,
    rate: float,
    kafka: str | None,
    redis: str | None,
    as_json: bool,
) -> None:
    """Stream synthetic clicks through a worker on embedded servers and report."""
    from worker.tools.demo import DemoOptions, format_report, run_demo

    tool_logging("warning")
    report = run_demo(
        DemoOptions(events=events, users=users, items=items, rate=rate, kafka=kafka, redis=redis)
    )
    click.echo(json.dumps(report) if as_json else format_report(report))
    ok = report["events"] == events and report["dlq"] == report["malformed_sent"]
    sys.exit(0 if ok and report["committed_to_end"] else 1)
