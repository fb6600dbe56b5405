"""Model state as a checkpoint's contents: the parts' state dicts, named, checked, no file I/O.

Each stateful part gives its own `state_dict()` (see `models.state`); this
module only names them (`learner.`, `history.`: the learner's seen history,
stored once, `rows.`), splits them into the
tensors and the JSON manifest a checkpoint holds, checks what comes back and
hands it to the parts' `load_state_dict()`. `snapshot` copies all state to
host memory at a batch boundary, so the slow write can run beside the learner.
Files (safetensors, fsync, rename, the checksum, the rotation) are the
worker's: `worker.storage.checkpoint_files`. Formats 1 to 5 (a flat layout) still
load, through `models.old_checkpoints`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

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
# 6: the parts' own state dicts under dotted names (tensors by name, the rest in "state");
#    those written before the learner read the seen history also hold `learner.recent.`,
#    a second ring fed the same clicks, which loading ignores.
FORMAT = 6
_READABLE = (1, 2, 3, 4, 5, 6)
_UNBOUNDED = RowLimits(max_rows=1 << 62)  # to check a row state without any cap


@dataclass
class Restored:
    """A loaded checkpoint, and why newer candidates were skipped.

    `rows` is the row policy's state dict, for `RowPolicy.over` with the
    caller's limits (stand-ins from the seen history when none was saved). The
    seen history is the learner's (`learner.history`).
    `path` names the manifest it came from and `skipped` the newer ones refused
    (file, reason): labels the reader fills in, for logs.
    """

    learner: OnlineLearner
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

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensors of the state, for the tensor file."""
        return {k: v for k, v in self.state.items() if isinstance(v, torch.Tensor)}

    def manifest(self, tensors_file: str, sha256: str) -> dict[str, JSON]:
        """The manifest beside the tensor file `tensors_file`, whose SHA-256 is `sha256`."""
        shapes: dict[str, JSON] = {
            name: list(t.shape) for name, t in sorted(self.tensors().items())
        }
        values = {k: v for k, v in self.state.items() if not isinstance(v, torch.Tensor)}
        return {
            "format": FORMAT,
            "created_at": self.created_at,
            "tensors": tensors_file,
            "sha256": sha256,
            "shapes": shapes,
            "config": self.config,
            "history_length": self.history_length,
            "offsets": self.offsets,
            "state": values,
        }


def snapshot(
    learner: OnlineLearner,
    offsets: dict[tuple[str, int], int],
    rows: RowPolicy | None = None,
    catalogue: Catalogue | None = None,
    ranking: StateDict | None = None,
) -> Snapshot:
    """Copy all state to host memory at a batch boundary: fast, no file I/O.

    The copies share no memory with the parts, so the learner may go on
    learning while the worker writes them. The learner's seen history is stored
    once, as `history.`.
    """
    history = learner.history
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


def readable(manifest: JSON) -> dict[str, JSON]:
    """`manifest` as a mapping of a format this version reads, or `CheckpointError` saying why.

    Cheap: the reader checks it before it reads the (large) tensor file.
    """
    if not isinstance(manifest, dict):
        raise CheckpointError("the manifest is not a JSON object")
    if manifest.get("format") not in _READABLE:
        raise CheckpointError(
            f"unknown format {manifest.get('format')!r} (this version reads 1 to {FORMAT})"
        )
    return manifest


def restore(
    manifest: dict[str, JSON],
    tensors: Mapping[str, torch.Tensor],
    device: torch.device,
    path: Path,
) -> Restored:
    """The parts a checkpoint's manifest and tensors stand for, on `device`.

    `tensors` are the tensor file's contents, already verified against the
    manifest's checksum. Raises `CheckpointError` naming what does not fit.
    """
    manifest = readable(manifest)
    try:
        return _restore(manifest, tensors, device, path)
    except StateError as exc:
        raise CheckpointError(f"the state does not fit: {exc}") from exc


def _restore(
    manifest: dict[str, JSON],
    tensors: Mapping[str, torch.Tensor],
    device: torch.device,
    path: Path,
) -> Restored:
    if manifest["format"] == FORMAT:
        shapes = {k: list(t.shape) for k, t in sorted(tensors.items())}
        if manifest.get("shapes") != shapes:
            raise CheckpointError("tensor shapes do not match the manifest")
        state = _state(manifest, tensors)
    else:
        state = from_flat(manifest, tensors)
    config = value(manifest, "config")
    length = integer(manifest, "history_length")
    if not isinstance(config, dict) or length < 1:
        raise CheckpointError("the manifest's config or history length is malformed")
    known = {f.name for f in dataclasses.fields(LearnerConfig)}
    config = {name: setting for name, setting in config.items() if name in known}  # retired ones
    history = SeenHistory(length, device)
    history.load_state_dict(part(state, "history"))
    try:
        learner = OnlineLearner(LearnerConfig(**config), device, history)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"the manifest's learner config is refused: {exc}") from exc
    learner.load_state_dict(part(state, "learner"), strict=manifest["format"] == FORMAT)
    if rows_of(state, "history.items") > learner.users.extent:
        raise CheckpointError("the seen history holds more users than the id map")
    rows = part(state, "rows") or _stand_in_rows(learner, history)
    RowPolicy.over(learner.users, learner.items, _UNBOUNDED, _UNBOUNDED, rows)  # checks it
    offsets = _offsets(sequence(manifest, "offsets"))
    catalogue = part(state, "catalogue")
    if catalogue:
        Catalogue().load_state_dict(catalogue)  # checks it
    ranking = part(state, "ranking")
    return Restored(learner, offsets, path, rows, catalogue=catalogue, ranking=ranking)


def _state(manifest: dict[str, JSON], tensors: Mapping[str, torch.Tensor]) -> StateDict:
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
