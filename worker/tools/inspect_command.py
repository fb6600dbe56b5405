"""`recstream inspect`: one user's stored list and the history behind it (`inspect_user.py`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from worker.commands.common import configure_logging, settings_or_exit


@click.command("inspect")
@click.argument("user")
@click.option(
    "--items",
    "items_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="An id,title CSV: show titles beside item ids.",
)
@click.option(
    "--worker",
    "worker_url",
    default=None,
    help="A running worker's metrics URL (RECSTREAM_DEBUG_ENDPOINT=true there), "
    "e.g. http://127.0.0.1:9108; else the newest checkpoint in RECSTREAM_CHECKPOINT_DIR.",
)
@click.option(
    "--checkpoint",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Read the history from this checkpoint directory instead.",
)
@click.option("--recent", type=click.IntRange(min=0), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def inspect_user(
    user: str,
    items_file: Path | None,
    worker_url: str | None,
    checkpoint: Path | None,
    recent: int,
    as_json: bool,
) -> None:
    """Show USER's list as stored in Redis and the clicks and seen history behind it."""
    from recstream.errors import RecstreamError
    from worker.tools.inspect_user import InspectError, Sources, format_report, inspect, load_titles

    settings = settings_or_exit()
    configure_logging(settings.log_format, "warning")
    sources = Sources(settings.redis, worker_url, checkpoint or settings.checkpoint.dir, recent)
    try:
        titles = load_titles(items_file) if items_file else None
        report = inspect(user, sources, titles)
    except (InspectError, RecstreamError, OSError) as exc:
        click.echo(f"inspect: {exc}", err=True)
        sys.exit(2)
    click.echo(json.dumps(report) if as_json else format_report(report))
