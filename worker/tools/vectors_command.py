"""`recstream import-vectors` and `export-vectors`: offline vectors in and out (`vectors.py`)."""

from __future__ import annotations

from pathlib import Path

import click

from worker.commands.common import configure_logging, exit_2_on_error, log, settings_or_exit


@click.command("import-vectors")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--project", is_flag=True, help="Map vectors of another width to RECSTREAM_DIM.")
@click.option("--force", is_flag=True, help="Write over an existing checkpoint (a newer one).")
def import_vectors(path: Path, project: bool, force: bool) -> None:
    """Warm start: write a checkpoint from an offline model's vectors (.npz of ids, matrices).

    The file holds item_ids and item_vectors, optionally item_bias, user_ids and
    user_vectors (e.g. implicit's ALS factors). The next `recstream run` starts from it.
    """
    from worker.tools.vectors import import_vectors as write_checkpoint

    settings = settings_or_exit()
    configure_logging(settings.log_format, settings.log_level)
    with exit_2_on_error("import_failed", path=str(path)):
        moved = write_checkpoint(settings, path, project=project, force=force)
    log().info("vectors_imported", checkpoint=str(moved.path), items=moved.items, users=moved.users)


@click.command("export-vectors")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def export_vectors(out: Path) -> None:
    """Write the newest checkpoint's item and user vectors to OUT (.npz, import's format)."""
    from worker.tools.vectors import export_to

    settings = settings_or_exit()
    configure_logging(settings.log_format, settings.log_level)
    with exit_2_on_error("export_failed", out=str(out)):
        moved = export_to(settings, out)
    log().info("vectors_exported", path=str(out), items=moved.items, users=moved.users)
