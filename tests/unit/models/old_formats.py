"""Checkpoints as recstream wrote them before format 6: a flat tensor file, fields in the manifest.

`write_format_5` is the writer of format 5 kept as it was (it reads the
components' fields, as that code did), so tests can check that such a
checkpoint still loads, and derive formats 1 to 4 from it by taking out what
those formats did not have. The learner then kept a recent-item ring of its
own beside the seen history; it is written here from the seen history's
newest slots (what that ring held), and loading ignores it.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from models.history import SeenHistory
from models.learner import OnlineLearner
from models.rows import RowPolicy


def write_format_5(
    directory: Path,
    learner: OnlineLearner,
    history: SeenHistory,
    offsets: dict[tuple[str, int], int],
    rows: RowPolicy | None = None,
) -> Path:
    """Write a format 5 checkpoint exactly as recstream did; returns the manifest's path."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.time_ns()}"
    tensors_path = directory / f"ckpt-{stamp}.safetensors"
    users, items = learner.user_table, learner.item_table
    recent_rows = min(history.capacity, users.rows)
    width = max(1, learner.config.recent_items)
    recent = history.latest(torch.arange(recent_rows), width)
    context = learner.context_table
    tensors = {
        "user_weight": users.weight[: users.rows].contiguous().cpu(),
        "user_grad_sq": users.grad_sq[: users.rows].contiguous().cpu(),
        "item_weight": items.weight[: items.rows].contiguous().cpu(),
        "item_grad_sq": items.grad_sq[: items.rows].contiguous().cpu(),
        "context_weight": context.weight[: context.rows].contiguous().cpu(),
        "context_grad_sq": context.grad_sq[: context.rows].contiguous().cpu(),
        "recent_items": recent.contiguous().cpu(),
        "recent_written": history.written[:recent_rows].clone().cpu(),
        "history_items": history.items[: users.rows].contiguous().cpu(),
        "history_written": history.written[: users.rows].contiguous().cpu(),
        "history_last_ts": history.last_ts[: users.rows].contiguous().cpu(),
    }
    prior = learner.prior
    if learner.config.popularity_weight:
        tensors["prior_log_mass"] = prior.log_mass[: items.rows].contiguous().cpu()
    transition = learner.transition
    if transition is not None:
        table = transition.table
        kept = min(items.rows, table.capacity)
        tensors["transition_successors"] = table.successors[:kept].contiguous().cpu()
        tensors["transition_weights"] = table.weights[:kept].contiguous().cpu()
        tensors["transition_written"] = table.written[:kept].contiguous().cpu()
    pending: dict[str, list[tuple[str, int]]] = {"users": [], "items": []}
    if rows is not None:
        user_seen, item_seen = rows.users.last_seen, rows.items.last_seen
        tensors["user_last_seen"] = torch.from_numpy(user_seen[: users.rows].copy())
        tensors["item_last_seen"] = torch.from_numpy(item_seen[: items.rows].copy())
        pending = {"users": rows.users.pending.items(), "items": rows.items.pending.items()}
    save_file(tensors, str(tensors_path))
    selector = None
    if transition is not None:
        # the retired online choice of the transition weight, as format 5 wrote it
        selector = {"hits": [0.0, 1.0], "current": 1, "observed": 3}
    manifest = {
        "format": 5,
        "created_at": time.time(),
        "tensors": tensors_path.name,
        "sha256": hashlib.sha256(tensors_path.read_bytes()).hexdigest(),
        "config": learner.config.__dict__,
        "history_length": history.length,
        "steps": learner.steps,
        "prior_ref": prior.ref,
        "prior_clock": prior.clock if math.isfinite(prior.clock) else None,
        "transition_selector": selector,
        "users": learner.users.ids(),
        "items": learner.items.ids(),
        "pending_users": pending["users"],
        "pending_items": pending["items"],
        "offsets": [[t, p, o] for (t, p), o in sorted(offsets.items())],
    }
    manifest_path = directory / f"ckpt-{stamp}.json"
    manifest_path.write_text(json.dumps(manifest))
    return manifest_path


def downgrade(manifest_path: Path, format_: int) -> None:
    """Turn a format 5 checkpoint into format `format_` (1 to 4): take out what it lacked."""
    manifest = json.loads(manifest_path.read_text())
    tensors_path = manifest_path.parent / manifest["tensors"]
    tensors = load_file(str(tensors_path))
    drop: list[str] = []
    if format_ <= 4:
        drop += [name for name in tensors if name.startswith("transition_")]
        del manifest["transition_selector"]
    if format_ <= 3:
        drop += ["prior_log_mass"]
        del manifest["prior_ref"], manifest["prior_clock"]
    if format_ <= 2:
        drop += ["context_weight", "context_grad_sq", "recent_items", "recent_written"]
    if format_ <= 1:  # format 2 added the row policy's state
        drop += ["user_last_seen", "item_last_seen"]
        del manifest["pending_users"], manifest["pending_items"]
    for name in drop:
        tensors.pop(name, None)
    save_file(tensors, str(tensors_path))
    manifest.update(format=format_, sha256=hashlib.sha256(tensors_path.read_bytes()).hexdigest())
    manifest_path.write_text(json.dumps(manifest))
