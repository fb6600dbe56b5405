"""`recstream replay`: a timestamped interactions file to the clicks topic (`replay.py`)."""

from __future__ import annotations

from pathlib import Path

import click

from worker.commands.common import configure_logging, exit_2_on_error, log, settings_or_exit


@click.command("replay")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rate", type=float, default=0.0, help="Events per second; 0 sends flat out.")
@click.option("--limit", type=int, default=None, help="Send only the first N (in time order).")
@click.option("--format", "fmt", type=click.Choice(["auto", "udata", "dat", "csv"]), default="auto")
@click.option("--quiet", is_flag=True, help="No progress bar (none either when not a terminal).")
def replay(path: Path, rate: float, limit: int | None, fmt: str, quiet: bool) -> None:
    """Send a timestamped interactions file to the clicks topic, in time order."""
    from stream.click_producer import ClickProducer
    from worker.tools.replay import read_interactions, send_interactions

    settings = settings_or_exit()
    configure_logging(settings.log_format, settings.log_level)
    with exit_2_on_error("replay_failed", path=str(path)):
        data = read_interactions(path, fmt)
        producer = ClickProducer(settings.kafka.client_config(), settings.kafka.topic)
        sent = send_interactions(producer, data, rate=rate, limit=limit, quiet=quiet)
    log().info("replay_finished", path=str(path), events=sent, topic=settings.kafka.topic)
