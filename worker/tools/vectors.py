"""`recstream import-vectors` and `export-vectors`: offline models in, the live model out.

Import writes a checkpoint into RECSTREAM_CHECKPOINT_DIR built from the vectors, so the
next `recstream run` starts from it exactly as from one it wrote itself (stopping a
running worker first is the operator's part: a worker writes its own checkpoints over
it). Export reads the newest checkpoint there, which a running worker keeps fresh.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from models.device import resolve_device
from models.errors import CheckpointError
from models.vectors import fit_dimension
from models.warm_start import export_vectors
from worker.app import build_engine
from worker.config.settings import Settings
from worker.errors import SettingsError
from worker.storage.checkpoint_files import load_latest, save
from worker.storage.vectors_file import load_vectors, save_vectors


@dataclass(frozen=True)
class Moved:
    """What an import or export carried, and where to."""

    path: Path
    items: int
    users: int


def _directory(settings: Settings) -> Path:
    if settings.checkpoint.dir is None:
        msg = "RECSTREAM_CHECKPOINT_DIR: not set; vectors go in and out through checkpoints"
        raise SettingsError(msg)
    return settings.checkpoint.dir


def import_vectors(
    settings: Settings, path: Path, *, project: bool = False, force: bool = False
) -> Moved:
    """Write a checkpoint holding `path`'s vectors; refuses to shadow one unless `force`."""
    directory = _directory(settings)
    device = resolve_device(settings.device)
    if not force and load_latest(directory, device) is not None:
        msg = f"{directory} already holds a checkpoint: --force writes a newer one over it"
        raise CheckpointError(msg)
    engine = build_engine(settings, device)
    vectors = fit_dimension(load_vectors(path), engine.learner.config.dim, project=project)
    now = time.time()  # imported rows count as seen now, so an id TTL does not expire them
    installed = engine.warm_start(vectors, seen_at=now)
    manifest = save(directory, engine.learner, {}, engine.rows)
    return Moved(manifest, installed.items, installed.users)


def export_to(settings: Settings, out: Path) -> Moved:
    """Write the newest checkpoint's item and user vectors to `out` (.npz)."""
    directory = _directory(settings)
    restored = load_latest(directory, resolve_device(settings.device))
    if restored is None:
        msg = f"no checkpoint in {directory} to export"
        raise CheckpointError(msg)
    vectors = export_vectors(restored.learner)
    save_vectors(out, vectors)
    return Moved(out, len(vectors.item_ids), len(vectors.user_ids or []))
