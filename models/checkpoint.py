"""Model state on disk: safetensors for tensors, a JSON manifest for ids and offsets.

Written atomically (temporary files, fsync, rename; the manifest last and
holding the tensor file's SHA-256), so a crash mid-write leaves either the
previous checkpoint or a manifest-less file that `load_latest` ignores and
`models.checkpoint_dir` removes at the next start. A write the disk refuses
(full, read-only, a file where the directory was) raises `CheckpointError`
and leaves none of its files behind. No pickle anywhere: safetensors holds
only raw tensors.

Format 2 (bounded rows): the id lists hold null for a free row (a hole), the
manifest holds each kind's pending occurrence counts, and the tensors hold
each row's last sight. Format 1 (no holes) still loads: last sights are
taken from the seen history (users) and its newest event time (items).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from models.errors import CheckpointError
from models.history import SeenHistory
from models.idmap import IdMap
from models.learner import LearnerConfig, OnlineLearner
from models.rows import RowPolicy, RowState

# 1: tables and history; 2: + row policy state (free rows, last sight, pending counts);
# 3: + the learner's recent-item context (context table and recent-item buffers);
# 4: + the popularity prior (per-item log mass, its reference time and clock);
# 5: + item-to-item transitions (successor rings) and the choice of their weight.
FORMAT = 5
_READABLE = (1, 2, 3, 4, 5)
_KEEP = 3  # newest checkpoints kept; older ones are removed after a successful write


@dataclass
class Restored:
    """A loaded checkpoint, and why newer candidates were skipped."""

    learner: OnlineLearner
    history: SeenHistory
    offsets: dict[tuple[str, int], int]
    path: Path
    rows: RowState
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


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


@dataclass(frozen=True)
class Snapshot:
    """Model state copied to host memory at a batch boundary: what a checkpoint writes.

    Taking one is quick (copies, no I/O), so the loop takes it; writing it is
    slow (`write_snapshot`) and may run on another thread while the live model
    moves on, since nothing here shares memory with it.
    """

    tensors: dict[str, torch.Tensor]
    manifest: dict[str, object]  # all but the file name, checksum and time of writing


def _host(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy that never shares memory with `tensor` (`.cpu()` does on a CPU)."""
    return tensor.detach().to("cpu", copy=True).contiguous()


def snapshot(
    learner: OnlineLearner,
    history: SeenHistory,
    offsets: dict[tuple[str, int], int],
    rows: RowPolicy | None = None,
) -> Snapshot:
    """Copy the state a checkpoint holds (with the row policy's, if given) to host memory."""
    users, items = learner.user_table, learner.item_table
    recent_rows = min(learner.recent.capacity, users.rows)
    context = learner.context_table
    tensors = {
        "user_weight": _host(users.weight[: users.rows]),
        "user_grad_sq": _host(users.grad_sq[: users.rows]),
        "item_weight": _host(items.weight[: items.rows]),
        "item_grad_sq": _host(items.grad_sq[: items.rows]),
        "context_weight": _host(context.weight[: context.rows]),
        "context_grad_sq": _host(context.grad_sq[: context.rows]),
        "recent_items": _host(learner.recent.items[:recent_rows]),
        "recent_written": _host(learner.recent.written[:recent_rows]),
        "history_items": _host(history.items[: users.rows]),
        "history_written": _host(history.written[: users.rows]),
        "history_last_ts": _host(history.last_ts[: users.rows]),
    }
    prior = learner.prior
    if learner.config.popularity_weight:
        tensors["prior_log_mass"] = _host(prior.log_mass[: items.rows])
    transition = learner.transition
    if transition is not None:
        for name, tensor in transition.table.state_dict(items.rows).items():
            tensors[f"transition_{name}"] = _host(tensor)
    pending: dict[str, list[tuple[str, int]]] = {"users": [], "items": []}
    if rows is not None:
        state = rows.state()
        tensors["user_last_seen"] = torch.from_numpy(state.user_last_seen[: users.rows].copy())
        tensors["item_last_seen"] = torch.from_numpy(state.item_last_seen[: items.rows].copy())
        pending = {"users": state.pending_users, "items": state.pending_items}
    manifest: dict[str, object] = {
        "format": FORMAT,
        "config": dict(learner.config.__dict__),
        "history_length": history.length,
        "steps": learner.steps,
        "prior_ref": prior.ref,
        "prior_clock": prior.clock if math.isfinite(prior.clock) else None,
        "transition_selector": transition.selector.state_dict() if transition else None,
        "users": learner.users.ids(),
        "items": learner.items.ids(),
        "pending_users": pending["users"],
        "pending_items": pending["items"],
        "offsets": [[t, p, o] for (t, p), o in sorted(offsets.items())],
    }
    return Snapshot(tensors, manifest)


def save(
    directory: Path,
    learner: OnlineLearner,
    history: SeenHistory,
    offsets: dict[tuple[str, int], int],
    rows: RowPolicy | None = None,
) -> Path:
    """Write one checkpoint (with the row policy's state, if given); returns the manifest's path.

    Raises `CheckpointError` if the file system refuses any part of it (see `write_snapshot`).
    """
    return write_snapshot(directory, snapshot(learner, history, offsets, rows))


def write_snapshot(directory: Path, snapshot: Snapshot) -> Path:
    """Write a snapshot as one checkpoint; returns the manifest's path. Safe on any thread.

    Raises `CheckpointError` if the file system refuses any part of it; every
    file of this attempt is removed first, so a failure leaves the directory
    as it was.
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


def _write(directory: Path, stamp: str, snapshot: Snapshot) -> Path:
    tensors_path = directory / f"ckpt-{stamp}.safetensors"
    tmp = tensors_path.with_suffix(".safetensors.tmp")
    save_file(snapshot.tensors, str(tmp))
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    tmp.replace(tensors_path)
    manifest = {
        **snapshot.manifest,
        "created_at": time.time(),
        "tensors": tensors_path.name,
        "sha256": _sha256(tensors_path),
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
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") not in _READABLE:
        raise ValueError(f"unknown format {manifest.get('format')!r} (this version reads 1 to 5)")
    tensors_path = manifest_path.parent / manifest["tensors"]
    if _sha256(tensors_path) != manifest["sha256"]:
        raise ValueError("tensor file does not match its checksum")
    tensors = load_file(str(tensors_path), device="cpu")
    users, items = manifest["users"], manifest["items"]
    if tensors["user_weight"].shape[0] != len(users) or tensors["item_weight"].shape[0] != len(
        items
    ):
        raise ValueError("row counts do not match the id lists")
    learner = OnlineLearner(LearnerConfig(**manifest["config"]), device)
    learner.users, learner.items = IdMap(users), IdMap(items)
    learner.sync_rows()
    learner.steps = int(manifest["steps"])
    learner.user_table.weight[: len(users)] = tensors["user_weight"].to(device)
    learner.user_table.grad_sq[: len(users)] = tensors["user_grad_sq"].to(device)
    learner.item_table.weight[: len(items)] = tensors["item_weight"].to(device)
    learner.item_table.grad_sq[: len(items)] = tensors["item_grad_sq"].to(device)
    if learner.config.recent_items and "context_weight" in tensors:  # formats 1 and 2: fresh
        context = learner.context_table
        context.weight[: context.rows] = tensors["context_weight"].to(device)
        context.grad_sq[: context.rows] = tensors["context_grad_sq"].to(device)
        recent = learner.recent
        held = int(tensors["recent_items"].shape[0])
        recent.items[:held] = tensors["recent_items"].to(device)
        recent.written[:held] = tensors["recent_written"].to(device)
    _restore_prior(learner, manifest, tensors)
    _restore_transitions(learner, manifest, tensors)
    history = SeenHistory(int(manifest["history_length"]), device)
    history.ensure_users(len(users))
    history.items[: len(users)] = tensors["history_items"].to(device)
    history.written[: len(users)] = tensors["history_written"].to(device)
    history.last_ts[: len(users)] = tensors["history_last_ts"].to(device)
    offsets = {(str(t), int(p)): int(o) for t, p, o in manifest["offsets"]}
    return Restored(learner, history, offsets, manifest_path, _row_state(manifest, tensors))


def _restore_transitions(
    learner: OnlineLearner, manifest: dict[str, object], tensors: dict[str, torch.Tensor]
) -> None:
    """Transitions and the choice of their weight as saved; formats 1 to 4 start them fresh."""
    transition = learner.transition
    if transition is None or "transition_successors" not in tensors:
        return
    prefix = "transition_"
    transition.table.load_state_dict(
        {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
    )
    transition.table.ensure_rows(learner.items.extent)
    selector = manifest.get("transition_selector")
    if isinstance(selector, dict):
        transition.selector.load_state_dict(selector)


def _restore_prior(
    learner: OnlineLearner, manifest: dict[str, object], tensors: dict[str, torch.Tensor]
) -> None:
    """The popularity prior as saved; formats 1 to 3 start it fresh.

    An older checkpoint's bias column is the learned bias alone: every item gets `L = 0`
    (as if clicked once at the reference time) so that column stays consistent, and
    the prior takes over from the next batch.
    """
    if not learner.config.popularity_weight:
        return
    prior, rows = learner.prior, learner.item_table.rows
    prior.ensure_rows(rows)
    if "prior_log_mass" not in tensors:
        prior.log_mass[:rows] = 0.0  # neutral: the saved bias column is the learned bias alone
        return
    prior.log_mass[:rows] = tensors["prior_log_mass"].to(learner.device)
    ref, clock = manifest.get("prior_ref"), manifest.get("prior_clock")
    prior.ref = float(ref) if isinstance(ref, (int, float)) else 0.0
    prior.clock = float(clock) if isinstance(clock, (int, float)) else -math.inf


def _row_state(manifest: dict[str, object], tensors: dict[str, torch.Tensor]) -> RowState:
    """The row policy's state; a format 1 checkpoint (or one saved without it) gets stand-ins."""
    user_ts = tensors["history_last_ts"].double().numpy()
    if "user_last_seen" in tensors:
        user_seen = tensors["user_last_seen"].double().numpy()
        item_seen = tensors["item_last_seen"].double().numpy()
    else:  # users: their newest event; items: the newest event of all (no sight is older)
        user_seen = user_ts.copy()
        item_seen = np.full(tensors["item_weight"].shape[0], user_ts.max(initial=0.0))
    pending_users = manifest.get("pending_users") or []
    pending_items = manifest.get("pending_items") or []
    if not isinstance(pending_users, list) or not isinstance(pending_items, list):
        raise TypeError("pending counts must be lists of [id, count]")
    return RowState(
        user_seen,
        item_seen,
        [(str(key), int(count)) for key, count in pending_users],
        [(str(key), int(count)) for key, count in pending_items],
    )


def newest_valid(
    directory: Path, device: torch.device
) -> tuple[Restored | None, list[tuple[str, str]]]:
    """The newest checkpoint that verifies (or None), and the newer ones skipped, with reasons."""
    skipped: list[tuple[str, str]] = []
    for manifest_path in sorted(directory.glob("ckpt-*.json"), reverse=True):
        try:
            restored = _load(manifest_path, device)
        except Exception as exc:  # noqa: BLE001  (any failure to verify or load means: skip it)
            skipped.append((manifest_path.name, f"{type(exc).__name__}: {exc}"))
            continue
        restored.skipped = skipped
        return restored, skipped
    return None, skipped


def load_latest(directory: Path, device: torch.device) -> Restored | None:
    """The newest checkpoint that verifies, or None; corrupt ones are skipped, with reasons."""
    return newest_valid(directory, device)[0]
