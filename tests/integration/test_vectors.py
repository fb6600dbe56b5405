"""Warm start and export through the CLI: offline vectors in, a worker's lists from them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from models.vectors import Vectors
from worker.storage.vectors_file import load_vectors, save_vectors

RECSTREAM = str(Path(sys.executable).parent / "recstream")


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [RECSTREAM, *args], env=env, capture_output=True, timeout=120, check=False
    )


def _offline_model(dim: int) -> Vectors:
    """Items near-orthogonal noise, except that user u1 points straight at item i7."""
    rng = np.random.default_rng(5)
    items = rng.normal(scale=0.05, size=(50, dim)).astype(np.float32)
    items[7] = 0.0
    items[7, 0] = 1.0
    users = rng.normal(scale=0.05, size=(5, dim)).astype(np.float32)
    users[1] = 0.0
    users[1, 0] = 5.0
    return Vectors([f"i{n}" for n in range(50)], items, None, [f"u{n}" for n in range(5)], users)


def test_imported_vectors_drive_the_first_lists_and_export_back(
    worker_env: Any, names: Any, produce: Any, redis_client: Any, tmp_path: Path
) -> None:
    """A worker started on imported vectors lists what they say; export returns the ids."""
    vectors_path = tmp_path / "als.npz"
    save_vectors(vectors_path, _offline_model(8))
    env = worker_env(RECSTREAM_DIM="8", RECSTREAM_CHECKPOINT_DIR=str(tmp_path / "ckpt"))
    imported = _cli(env, "import-vectors", str(vectors_path))
    assert imported.returncode == 0, imported.stderr.decode()[-2000:]
    proc = subprocess.Popen(
        [RECSTREAM, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        produce(names.topic, [(b"u1", msgpack.packb({"user": "u1", "item": "i3"}))])
        deadline, raw = time.monotonic() + 60, None
        while raw is None and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            raw = redis_client.get(f"{names.prefix}u1")
            time.sleep(0.2)
        assert raw is not None, "no list for u1"
        items = msgpack.unpackb(raw)["items"]
        assert items[0] == "i7"  # the offline model's pick, before any click on it
        assert "i3" not in items
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    out = tmp_path / "export.npz"
    exported = _cli(env, "export-vectors", str(out))
    assert exported.returncode == 0, exported.stderr.decode()[-2000:]
    back = load_vectors(out)
    assert set(back.item_ids) == {f"i{n}" for n in range(50)}
    assert back.user_ids is not None
    assert "u1" in back.user_ids


def test_a_width_mismatch_is_refused_by_name(worker_env: Any, tmp_path: Path) -> None:
    """Vectors wider than RECSTREAM_DIM exit 2 naming it, unless --project maps them."""
    vectors_path = tmp_path / "wide.npz"
    save_vectors(vectors_path, _offline_model(12))
    env = worker_env(RECSTREAM_DIM="8", RECSTREAM_CHECKPOINT_DIR=str(tmp_path / "ckpt"))
    refused = _cli(env, "import-vectors", str(vectors_path))
    assert refused.returncode == 2
    assert "RECSTREAM_DIM" in refused.stderr.decode() + refused.stdout.decode()
    projected = _cli(env, "import-vectors", "--project", str(vectors_path))
    assert projected.returncode == 0, projected.stderr.decode()[-2000:]
    again = _cli(env, "import-vectors", "--project", str(vectors_path))
    assert again.returncode == 2  # a checkpoint is there now: --force to write over it
