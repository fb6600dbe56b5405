"""The directory checkpoints live in, at start: checked, cleared of killed writes, sorted.

One process writes to a directory at a time: every temporary found at start
was left by a writer that was killed, and is removed. Checkpoints that fail to
verify are moved to `SET_ASIDE` (kept, never deleted), so that the rotation of
the newest three does not push the good ones out in their favour.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from models.checkpoint import Restored
from models.errors import CheckpointError
from worker.storage.checkpoint_files import newest_valid, write_atomically

SET_ASIDE = "corrupt"  # subdirectory that checkpoints which failed to verify are moved to


@dataclass
class Opened:
    """What `open_directory` found: the checkpoint restored (if any) and what it cleared."""

    restored: Restored | None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (manifest, reason)
    set_aside: list[str] = field(default_factory=list)  # files moved to SET_ASIDE
    removed: list[str] = field(default_factory=list)  # temporaries and orphans of killed writes


def open_directory(directory: Path, device: torch.device) -> Opened:
    """At start: check `directory` can hold checkpoints, clear killed writes, restore the newest.

    Temporaries and manifest-less tensor files (what a write killed midway
    leaves) are removed. Checkpoints newer than the one restored that fail to
    verify (all of them, when none does) are moved to `SET_ASIDE`, kept for a
    person to look at and out of the rotation that would otherwise push the
    older, good ones out. Raises `CheckpointError` when the directory cannot
    be created or written.
    """
    check_writable(directory)
    removed = _remove_leftovers(directory)
    restored, skipped = newest_valid(directory, device)
    try:
        set_aside = [moved for name, _ in skipped for moved in _set_aside(directory, name)]
    except OSError as exc:
        raise CheckpointError(f"cannot move a corrupt checkpoint aside: {exc}") from exc
    return Opened(restored, skipped, set_aside, removed)


def check_writable(directory: Path) -> None:
    """`CheckpointError` unless `directory` is (or can be made) a directory this process writes.

    Cheap and local: the worker runs it before waiting for any server.
    """
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"{directory} is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create {directory}: {exc}") from exc
    probe = directory / f"ckpt-probe-{os.getpid()}.tmp"
    try:
        write_atomically(probe, b"recstream checks this directory can be written\n")
        probe.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.with_suffix(probe.suffix + ".tmp").unlink()
        raise CheckpointError(f"cannot write in {directory}: {exc}") from exc


def _remove_leftovers(directory: Path) -> list[str]:
    leftovers = list(directory.glob("ckpt-*.tmp"))
    leftovers += [
        tensors
        for tensors in directory.glob("ckpt-*.safetensors")
        if not tensors.with_suffix(".json").exists()
    ]
    removed = []
    for path in sorted(leftovers):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path.name)
    return removed


def _set_aside(directory: Path, manifest_name: str) -> list[str]:
    aside = directory / SET_ASIDE
    aside.mkdir(exist_ok=True)
    moved = []
    for name in (manifest_name, manifest_name.replace(".json", ".safetensors")):
        if (directory / name).exists():
            (directory / name).replace(aside / name)
            moved.append(name)
    return moved
