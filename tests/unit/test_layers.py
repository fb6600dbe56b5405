"""The layers as DESIGN.md draws them, read from the source: who imports whom, who opens files.

Imports are read with `ast` from every module of the packages (lazy imports
inside functions and `TYPE_CHECKING` blocks count too), so a test fails on the
line that breaks a rule, before anything runs.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import io
import os
import pathlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("recstream", "models", "index", "stream", "worker")

# Which packages each may import (besides itself): worker -> stream, index, models; index ->
# models; recstream (the error root) below them all, importing nothing of the project.
MAY_IMPORT = {
    "recstream": set(),
    "models": {"recstream"},
    "index": {"recstream", "models"},
    "stream": {"recstream"},
    "worker": {"recstream", "models", "index", "stream"},
}

# Scale-out, an optional part: its modules (a name covers its sub-modules). Moving them, into a
# sub-package say, means editing this tuple and nothing else here.
SCALE_OUT = (
    "worker.scaleout",
    "stream.sync_topics",  # Kafka stays in stream/: the state and item-feed topics' admin
)
# The only other modules that may import scale-out, and why.
SCALE_OUT_USERS = {
    "worker.app": "wires scale-out in when RECSTREAM_SCALE_OUT is on",
    "worker.loop.batch_loop": "calls its hooks (attach, tick, after_batch, close): a ScaleOut",
    "worker.tools.handover_bench": "the benchmark of a hand-over drives it directly",
}

# Tools and test servers stand apart from the service: only the CLI reaches them.
APART = ("worker.tools", "worker.testing")
APART_USERS = {"worker.cli": "names each command's module (COMMANDS), imported when asked for"}


@dataclass(frozen=True)
class Module:
    """One module of the packages: its dotted name, its file and its parsed source."""

    name: str
    path: Path
    tree: ast.Module

    def imports(self) -> Iterator[tuple[int, str]]:
        """(line, dotted name) of everything imported; `from a import b` gives `a` and `a.b`."""
        package = self.name if self.path.name == "__init__.py" else self.name.rpartition(".")[0]
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield node.lineno, alias.name
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's own package, `level` steps up
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                yield node.lineno, base
                for alias in node.names:
                    yield node.lineno, f"{base}.{alias.name}"


def _modules() -> list[Module]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found.append(Module(".".join(parts), path, ast.parse(path.read_text(), str(path))))
    return found


MODULES = _modules()


def _within(name: str, prefixes: tuple[str, ...] | set[str]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def _where(module: Module, line: int) -> str:
    return f"{module.path.relative_to(ROOT)}:{line}"


def test_every_package_is_read() -> None:
    """The scan sees each package's modules (an empty scan would pass every rule below)."""
    assert {m.name.split(".")[0] for m in MODULES} == set(PACKAGES)
    assert len(MODULES) > 100
    assert all(any(m.name == s for m in MODULES) for s in SCALE_OUT), "SCALE_OUT names a ghost"


def test_packages_import_only_downwards() -> None:
    """The models and stream packages import only the error root; index only models too."""
    broken = [
        f"{_where(module, line)} {module.name} imports {name}"
        for module in MODULES
        for line, name in module.imports()
        if (top := name.split(".")[0]) in PACKAGES
        and top != (own := module.name.split(".")[0])
        and top not in MAY_IMPORT[own]
    ]
    assert not broken, "\n".join(broken)


def test_scale_out_is_imported_only_by_its_wiring_and_itself() -> None:
    """Scale-out stays a part one can take out: only the app, the loop's hooks and its bench."""
    broken = [
        f"{_where(module, line)} {module.name} imports {name}"
        for module in MODULES
        if not _within(module.name, SCALE_OUT) and module.name not in SCALE_OUT_USERS
        for line, name in module.imports()
        if _within(name, SCALE_OUT)
    ]
    assert not broken, "\n".join(broken)


def test_the_service_does_not_import_its_tools_or_test_servers() -> None:
    """The service's modules reach worker.tools and worker.testing only through the CLI."""
    broken = [
        f"{_where(module, line)} {module.name} imports {name}"
        for module in MODULES
        if module.name.startswith("worker.")
        and not _within(module.name, APART)
        and module.name not in APART_USERS
        for line, name in module.imports()
        if _within(name, APART)
    ]
    assert not broken, "\n".join(broken)


def test_every_error_derives_from_the_one_root() -> None:
    """No class subclasses a built-in exception but `RecstreamError`, and each errors.py's do."""
    root = importlib.import_module("recstream.errors").RecstreamError
    builtin_errors = {
        name
        for name in dir(builtins)
        if isinstance(getattr(builtins, name), type)
        and issubclass(getattr(builtins, name), BaseException)
    }
    broken = [
        f"{_where(module, node.lineno)} {node.name}"
        for module in MODULES
        if module.name != "recstream.errors"
        for node in ast.walk(module.tree)
        if isinstance(node, ast.ClassDef)
        and any(isinstance(b, ast.Name) and b.id in builtin_errors for b in node.bases)
    ]
    assert not broken, "\n".join(broken)
    families = [m.name for m in MODULES if m.name.endswith(".errors")]
    assert set(families) == {f"{p}.errors" for p in PACKAGES}
    for name in families:
        errors = [
            value
            for value in vars(importlib.import_module(name)).values()
            if isinstance(value, type) and issubclass(value, BaseException)
        ]
        assert errors, name
        assert all(issubclass(e, root) for e in errors), name


# What opens, writes or moves a file: modules, calls by name, and methods whatever the receiver.
_FILE_MODULES = {"os", "io", "shutil", "tempfile", "glob", "fileinput", "mmap", "pickle", "shelve"}
_FILE_CALLS = {"open", "save_file", "load_file", "safe_open"}
_FILE_METHODS = {
    "open",
    "write_text",
    "write_bytes",
    "read_text",
    "read_bytes",
    "mkdir",
    "makedirs",
    "unlink",
    "rmdir",
    "touch",
    "glob",
    "rglob",
    "iterdir",
    "fsync",
    "tofile",
    "fromfile",
    "savez",
    "savez_compressed",
    "savetxt",
    "loadtxt",
    "memmap",
}
_SERIALISERS = {"torch", "np", "numpy"}  # their save/load take paths


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    return []


def _called(node: ast.AST) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Name) and func.id in _FILE_CALLS:
        return f"{func.id}()"
    if not isinstance(func, ast.Attribute):
        return None
    if func.attr in _FILE_METHODS:
        return f".{func.attr}()"
    receiver = func.value.id if isinstance(func.value, ast.Name) else ""
    if receiver in _SERIALISERS and func.attr in {"save", "load"}:
        return f"{receiver}.{func.attr}()"
    return None


def file_io(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for each thing in `tree` that touches the file system."""
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        found += [
            (line, f"import {n}") for n in _imported(node) if n.split(".")[0] in _FILE_MODULES
        ]
        if (call := _called(node)) is not None:
            found.append((line, call))
    return found


@pytest.mark.parametrize(
    "source",
    [
        "open('x')",
        "Path('x').write_text('y')",
        "directory.mkdir(parents=True)",
        "torch.save(state, path)",
        "np.load(path)",
        "import os",
        "from tempfile import mkstemp",
        "save_file(tensors, path)",
    ],
)
def test_the_file_check_sees_file_io(source: str) -> None:
    """Each kind of file access the check below looks for is found in a one-line example."""
    assert file_io(ast.parse(source))


def test_models_opens_no_file_in_its_source() -> None:
    """No module of models/ opens, writes, moves or lists a file: that is worker/'s."""
    broken = [
        f"{_where(module, line)} {what}"
        for module in MODULES
        if module.name.split(".")[0] == "models"
        for line, what in file_io(module.tree)
    ]
    assert not broken, "\n".join(broken)
    worker_files = next(m for m in MODULES if m.name == "worker.storage.checkpoint_files")
    assert file_io(worker_files.tree)  # where the files went: the check sees them there


class _OpenedAFileError(AssertionError):
    """Raised by every file function while `_no_files` holds."""


@contextmanager
def _no_files() -> Iterator[None]:
    """Every way to open, write or move a file fails inside the block."""

    def refuse(*_: object, **__: object) -> None:
        raise _OpenedAFileError

    targets = [
        (builtins, "open"),
        (io, "open"),
        (os, "open"),
        (os, "replace"),
        (os, "fsync"),
        (os, "mkdir"),
        (pathlib.Path, "open"),
        (torch, "save"),
        (torch, "load"),
        (np, "load"),
        (np, "save"),
        (np, "savez"),
    ]
    with pytest.MonkeyPatch.context() as patch:
        for owner, name in targets:
            patch.setattr(owner, name, refuse)
        yield


def _round_trip() -> None:
    from models.checkpoint import restore, snapshot
    from models.history import SeenHistory
    from models.learner import LearnerConfig, OnlineLearner
    from models.vectors import from_arrays, to_arrays
    from models.warm_start import export_vectors

    cpu = torch.device("cpu")
    learner = OnlineLearner(LearnerConfig(dim=4, negatives=2, seed=0), cpu, SeenHistory(3, cpu))
    users = torch.from_numpy(learner.users.rows_for(["u1", "u2"]))
    items = torch.from_numpy(learner.items.rows_for(["i1", "i2"]))
    learner.learn(users, items, torch.ones(2), click_ts=torch.ones(2))
    taken = snapshot(learner, {("clicks", 0): 2})
    back = restore(taken.manifest("t.safetensors", "0" * 64), taken.tensors(), cpu, Path("m"))
    assert back.learner.items.ids() == learner.items.ids()
    vectors = from_arrays(to_arrays(export_vectors(back.learner)))
    assert vectors.item_ids == ["i1", "i2"]


def test_a_models_state_round_trip_opens_no_file() -> None:
    """Snapshot, split, restore and vectors in and out run with every file function refused."""
    _round_trip()  # once as it is: imports and torch's lazy set-up may read files
    with _no_files():
        _round_trip()
        with pytest.raises(_OpenedAFileError):  # the patch holds: a file open does fail here
            Path(ROOT / "pyproject.toml").read_text()
