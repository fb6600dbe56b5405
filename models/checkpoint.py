"""Model state on disk: the parts' state dicts, tensors in safetensors, the rest in JSON.

Each stateful part gives its own `state_dict()` (see `models.state`); this
module only names them (`learner.`, `history.`, `rows.`), stores them, checks
them and hands them back to `load_state_dict()`. Saving is two steps, so the
slow one can run beside the learner: `snapshot` copies all state to host
memory at a batch boundary (no file I/O), and `write_snapshot` writes it.

A write is atomic (temporary files, fsync, rename; the manifest last and
holding the tensor file's SHA-256 and every tensor's shape), so a crash
mid-write leaves either the previous checkpoint or a manifest-less file that
`load_latest` ignores and `models.checkpoint_dir` removes at the next start. A
write the disk refuses (full, read-only, a file where the directory was)
raises `CheckpointError` and leaves none of its files behind, and so does a
checkpoint that cannot be read back. No pickle anywhere: safetensors holds
only raw tensors. Formats 1 to 5 (a flat layout) still load, through
`models.old_checkpoints`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from models.catalogue import Catalogue
from models.errors import CheckpointError, StateError
from models.history import SeenHistory
from models.learner import LearnerConfig, OnlineLearner
from models.old_checkpoints import from_flat
from models.rows import RowLimits, RowPolicy
from models.state import JSON, StateDict, integer, part, prefixed, rows_of, sequence, value

# 1: tables and history; 2: + row policy state (free rows, last sight, pending counts);
# 3: + the learner's recent-item context (context table and recent-item buffers);
# 4: + the popularity prior (per-item log mass, its reference time and clock);
# 5: + item-to-item transitions (successor rings) and the choice of their weight;
# 6: the parts' own state dicts under dotted names (tensors by name, the rest in "state").
FORMAT = 6
_READABLE = (1, 2, 3, 4, 5, 6)
_KEEP = 3  # newest checkpoints kept; older ones are removed after a successful write
_UNBOUNDED = RowLimits(max_rows=1 << 62)  # to check a row state without any cap


@dataclass
class Restored:
    """A loaded checkpoint, and why newer candidates were skipped.

    `rows` is the row policy's state dict, for `RowPolicy.over` with the
    caller's limits (stand-ins from the seen history when none was saved).
    """

    learner: OnlineLearner
    history: SeenHistory
    offsets: dict[tuple[str, int], int]
    path: Path
    rows: StateDict
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    catalogue: StateDict = field(default_factory=dict)  # empty: saved without one
    ranking: StateDict = field(default_factory=dict)  # trending counts and ranker; empty: none


@dataclass(frozen=True)
class Snapshot:
    """Everything one checkpoint holds, copied to host memory; later learning cannot change it."""

    state: StateDict  # dotted names: tensors on the CPU (copies) and plain JSON values
    config: dict[str, JSON]  # the learner's, to build one to load the state into
    history_length: int
    offsets: list[JSON]  # [topic, partition, offset] triples, sorted
    created_at: float


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


def snapshot(
    learner: OnlineLearner,
    history: SeenHistory,
    offsets: dict[tuple[str, int], int],
    rows: RowPolicy | None = None,
    catalogue: Catalogue | None = None,
    ranking: StateDict | None = None,
) -> Snapshot:
    """Copy all state to host memory at a batch boundary: fast, no file I/O.

    The copies share no memory with the parts, so the learner may go on
    learning while `write_snapshot` writes them.
    """
    state = prefixed("learner", learner.state_dict())
    state |= prefixed("history", history.state_dict(learner.user_table.rows))
    if rows is not None:
        state |= prefixed("rows", rows.state_dict())
    if catalogue is not None:
        state |= prefixed("catalogue", catalogue.state_dict())
    if ranking is not None:  # stage 2's state, as its owner (the worker's Engine) hands it over
        state |= prefixed("ranking", ranking)
    config: dict[str, JSON] = dataclasses.asdict(learner.config)
    triples: list[JSON] = [[t, p, o] for (t, p), o in sorted(offsets.items())]
    return Snapshot(state, config, history.length, triples, time.time())


def write_snapshot(directory: Path, snapshot: Snapshot) -> Path:
    """Write one snapshot as a checkpoint and prune old ones; returns the manifest's path.

    The slow part of a save, safe on a background thread (it reads only the
    snapshot), one writer per directory at a time. Raises `CheckpointError`
    if the file system refuses any part of it; every file of this attempt is
    removed first, so a failure leaves the directory as it was.
    """
    stamp = f"{time.time_ns()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        manifest_path = _write(directory, stamp, snapshot)
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
    history: SeenHistory,
    offsets: dict[tuple[str, int], int],
    rows: RowPolicy | None = None,
) -> Path:
    """`snapshot` then `write_snapshot`, in the caller's thread; returns the manifest's path."""
    return write_snapshot(directory, snapshot(learner, history, offsets, rows))


def _write(directory: Path, stamp: str, snapshot: Snapshot) -> Path:
    tensors = {k: v for k, v in snapshot.state.items() if isinstance(v, torch.Tensor)}
    values = {k: v for k, v in snapshot.state.items() if not isinstance(v, torch.Tensor)}
    tensors_path = directory / f"ckpt-{stamp}.safetensors"
    tmp = tensors_path.with_suffix(".safetensors.tmp")
    save_file(tensors, str(tmp))
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    tmp.replace(tensors_path)
    manifest = {
        "format": FORMAT,
        "created_at": snapshot.created_at,
        "tensors": tensors_path.name,
        "sha256": _sha256(tensors_path),
        "shapes": {name: list(t.shape) for name, t in sorted(tensors.items())},
        "config": snapshot.config,
        "history_length": snapshot.history_length,
        "offsets": snapshot.offsets,
        "state": values,
    }
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
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict):
        raise CheckpointError("the manifest is not a JSON object")
    if manifest.get("format") not in _READABLE:
        raise CheckpointError(
            f"unknown format {manifest.get('format')!r} (this version reads 1 to {FORMAT})"
        )
    try:
        return _restore(manifest_path, manifest, device)
    except StateError as exc:
        raise CheckpointError(f"the state does not fit: {exc}") from exc


def _restore(manifest_path: Path, manifest: dict[str, JSON], device: torch.device) -> Restored:
    tensors = _tensors(manifest_path.parent, manifest)
    if manifest["format"] == FORMAT:
        state = _state(manifest, tensors)
    else:
        state = from_flat(manifest, tensors)
    config = value(manifest, "config")
    length = integer(manifest, "history_length")
    if not isinstance(config, dict) or length < 1:
        raise CheckpointError("the manifest's config or history length is malformed")
    known = {f.name for f in dataclasses.fields(LearnerConfig)}
    config = {name: setting for name, setting in config.items() if name in known}  # retired ones
    try:
        learner = OnlineLearner(LearnerConfig(**config), device)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"the manifest's learner config is refused: {exc}") from exc
    learner.load_state_dict(part(state, "learner"), strict=manifest["format"] == FORMAT)
    history = SeenHistory(length, device)
    history.load_state_dict(part(state, "history"))
    if rows_of(state, "history.items") > learner.users.extent:
        raise CheckpointError("the seen history holds more users than the id map")
    history.ensure_users(learner.users.extent)
    rows = part(state, "rows") or _stand_in_rows(learner, history)
    RowPolicy.over(learner.users, learner.items, _UNBOUNDED, _UNBOUNDED, rows)  # checks it
    offsets = _offsets(sequence(manifest, "offsets"))
    catalogue = part(state, "catalogue")
    if catalogue:
        Catalogue().load_state_dict(catalogue)  # checks it
    ranking = part(state, "ranking")
    return Restored(
        learner, history, offsets, manifest_path, rows, catalogue=catalogue, ranking=ranking
    )


def _tensors(directory: Path, manifest: dict[str, JSON]) -> dict[str, torch.Tensor]:
    """The tensor file's contents, once its checksum (and, from format 6, shapes) match."""
    name, digest = manifest.get("tensors"), manifest.get("sha256")
    if not isinstance(name, str) or Path(name).name != name or not isinstance(digest, str):
        raise CheckpointError("the manifest names no tensor file in its directory")
    try:
        if _sha256(directory / name) != digest:
            raise CheckpointError("tensor file does not match its checksum")
        tensors = load_file(str(directory / name), device="cpu")
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"unreadable tensor file: {exc}") from exc
    if manifest["format"] == FORMAT:
        shapes = {k: list(t.shape) for k, t in sorted(tensors.items())}
        if manifest.get("shapes") != shapes:
            raise CheckpointError("tensor shapes do not match the manifest")
    return tensors


def _state(manifest: dict[str, JSON], tensors: dict[str, torch.Tensor]) -> StateDict:
    values = manifest.get("state")
    if not isinstance(values, dict) or values.keys() & tensors.keys():
        raise CheckpointError("the manifest's state is malformed")
    state: StateDict = dict(tensors)
    state.update(values)
    return state


def _stand_in_rows(learner: OnlineLearner, history: SeenHistory) -> StateDict:
    """Row state for a checkpoint saved without one (format 1, or no row policy given).

    Users: their newest event; items: the newest event of all (no sight is older).
    """
    user_seen = history.last_ts[: learner.users.extent].double().cpu()
    newest = max(0.0, float(user_seen.max())) if user_seen.numel() else 0.0
    item_seen = torch.full((learner.items.extent,), newest, dtype=torch.float64)
    return {
        "users.last_seen": user_seen.clone(),
        "users.pending.counts": [],
        "items.last_seen": item_seen,
        "items.pending.counts": [],
    }


def _offsets(triples: list[JSON]) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    for triple in triples:
        match triple:
            case [str(topic), int(partition), int(offset)]:
                offsets[topic, partition] = offset
            case _:
                raise CheckpointError(f"offset {triple!r} is not [topic, partition, offset]")
    return offsets


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
