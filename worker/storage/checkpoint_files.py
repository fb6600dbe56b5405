"""Checkpoints on disk: a snapshot's tensors in safetensors, the rest in a JSON manifest.

What a checkpoint holds, and how it is checked and restored, is
`models.checkpoint`'s (no file I/O there); this module writes and reads the
files. A write is atomic (temporary files, fsync, rename; the manifest last
and holding the tensor file's SHA-256 and every tensor's shape), so a crash
mid-write leaves either the previous checkpoint or a manifest-less file that
`load_latest` ignores and `worker.storage.checkpoint_dir` removes at the next start. A
write the disk refuses (full, read-only, a file where the directory was)
raises `CheckpointError` and leaves none of its files behind, and so does a
checkpoint that cannot be read back. No pickle anywhere: safetensors holds
only raw tensors.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from models.checkpoint import Restored, Snapshot, readable, restore, snapshot
from models.errors import CheckpointError
from models.learner import OnlineLearner
from models.rows import RowPolicy
from models.state import JSON

_KEEP = 3  # newest checkpoints kept; older ones are removed after a successful write


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary beside `path`, fsync it, and rename it into place."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def write_snapshot(directory: Path, taken: Snapshot) -> Path:
    """Write one snapshot as a checkpoint and prune old ones; returns the manifest's path.

    The slow part of a save, safe on a background thread (it reads only the
    snapshot), one writer per directory at a time. Raises `CheckpointError`
    if the file system refuses any part of it; every file of this attempt is
    removed first, so a failure leaves the directory as it was.
    """
    stamp = f"{time.time_ns()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        manifest_path = _write(directory, stamp, taken)
    except (OSError, SafetensorError) as exc:
        for path in directory.glob(f"ckpt-{stamp}.*"):
            with contextlib.suppress(OSError):
                path.unlink()
        raise CheckpointError(f"cannot write a checkpoint in {directory}: {exc}") from exc
    _prune(directory)
    return manifest_path


def save(
    directory: Path,
    learner: OnlineLearner,
    offsets: dict[tuple[str, int], int],
    rows: RowPolicy | None = None,
) -> Path:
    """`snapshot` then `write_snapshot`, in the caller's thread; returns the manifest's path."""
    return write_snapshot(directory, snapshot(learner, offsets, rows))


def _write(directory: Path, stamp: str, taken: Snapshot) -> Path:
    tensors_path = directory / f"ckpt-{stamp}.safetensors"
    tmp = tensors_path.with_suffix(".safetensors.tmp")
    save_file(taken.tensors(), str(tmp))
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    tmp.replace(tensors_path)
    manifest = taken.manifest(tensors_path.name, _sha256(tensors_path))
    manifest_path = directory / f"ckpt-{stamp}.json"
    write_atomically(manifest_path, json.dumps(manifest).encode())
    return manifest_path


def _prune(directory: Path) -> None:
    manifests = sorted(directory.glob("ckpt-*.json"))
    for old in manifests[:-_KEEP]:
        with contextlib.suppress(OSError):
            (directory / old.name.replace(".json", ".safetensors")).unlink()
            old.unlink()


def _load(manifest_path: Path, device: torch.device) -> Restored:
    """Read, verify and restore one checkpoint; `CheckpointError` says why one cannot be."""
    try:
        parsed: JSON = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"unreadable manifest: {exc}") from exc
    manifest = readable(parsed)  # before the tensor file: a future format is not read at all
    return restore(manifest, _tensors(manifest_path.parent, manifest), device, manifest_path)


def _tensors(directory: Path, manifest: dict[str, JSON]) -> dict[str, torch.Tensor]:
    """The tensor file's contents, once its checksum matches the manifest's."""
    name, digest = manifest.get("tensors"), manifest.get("sha256")
    if not isinstance(name, str) or Path(name).name != name or not isinstance(digest, str):
        raise CheckpointError("the manifest names no tensor file in its directory")
    try:
        if _sha256(directory / name) != digest:
            raise CheckpointError("tensor file does not match its checksum")
        return load_file(str(directory / name), device="cpu")
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"unreadable tensor file: {exc}") from exc


def newest_valid(
    directory: Path, device: torch.device
) -> tuple[Restored | None, list[tuple[str, str]]]:
    """The newest checkpoint that verifies (or None), and the newer ones skipped, with reasons."""
    skipped: list[tuple[str, str]] = []
    for manifest_path in sorted(directory.glob("ckpt-*.json"), reverse=True):
        try:
            restored = _load(manifest_path, device)
        except CheckpointError as exc:
            skipped.append((manifest_path.name, str(exc)))
            continue
        restored.skipped = skipped
        return restored, skipped
    return None, skipped


def load_latest(directory: Path, device: torch.device) -> Restored | None:
    """The newest checkpoint that verifies, or None; corrupt ones are skipped, with reasons."""
    return newest_valid(directory, device)[0]
