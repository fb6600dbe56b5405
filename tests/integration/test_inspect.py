"""`recstream inspect` on a real worker's output: the list in Valkey, the history behind it.

The history comes from a checkpoint and from the opt-in debug endpoint.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import msgpack
import pytest

from worker.app import build_worker
from worker.config.settings import Settings
from worker.observability.debug import describe_user
from worker.observability.metrics import HealthServer

RECSTREAM = str(Path(sys.executable).parent / "recstream")
MINE = [f"i{n}" for n in (3, 1, 4, 15, 9)]  # u1's clicks, oldest first


def _clicks() -> list[tuple[bytes, bytes]]:
    now = time.time() - 100
    out = [
        (
            f"u{n % 20}".encode(),
            msgpack.packb({"user": f"u{n % 20}", "item": f"i{n % 40}", "ts": now}),
        )
        for n in range(2, 400)
        if n % 20 != 1
    ]
    out += [
        (b"u1", msgpack.packb({"user": "u1", "item": item, "ts": now + k}))
        for k, item in enumerate(MINE)
    ]
    return out


def _inspect(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RECSTREAM, "inspect", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_inspect_shows_the_list_and_the_history_behind_it(
    make_settings: Any, worker_env: Any, names: Any, produce: Any, tmp_path: Path
) -> None:
    """The stored list (titles, version, age) and u1's clicks newest first, from either source."""
    settings = make_settings(checkpoint_dir=tmp_path / "ckpt", checkpoint_interval_s=1e9)
    worker = build_worker(settings)
    messages = _clicks()
    produce(names.topic, messages)
    server = HealthServer(0, worker.metrics, host="127.0.0.1")
    try:
        assert worker.run_until(lambda w: w.totals.messages >= len(messages), timeout_s=90)
        worker.checkpoint()
        server.start(worker.live, worker.ready, lambda u: describe_user(worker.learner, u))
        titles = tmp_path / "items.csv"
        titles.write_text(
            "id,title\n" + "".join(f'i{n},"Film {n}, the sequel"\n' for n in range(40))
        )
        env = worker_env(RECSTREAM_CHECKPOINT_DIR=str(tmp_path / "ckpt"))

        from_checkpoint = _inspect(env, "u1", "--json", "--items", str(titles))
        assert from_checkpoint.returncode == 0, from_checkpoint.stderr
        report = json.loads(from_checkpoint.stdout)
        listed = report["list"]
        assert listed["source"] == "user"
        assert listed["key"] == f"{names.prefix}u1"
        assert len(listed["items"]) == settings.ranking.top_k
        assert not set(listed["items"]) & set(MINE)  # seen items are never listed
        assert listed["version"] >= 1
        assert 0 <= listed["age_s"] < 120
        history = report["history"]
        assert history["recent"][:5] == MINE[::-1]
        assert sorted(history["seen"]) == sorted(MINE)
        assert history["checkpoint"].startswith("ckpt-")
        assert report["titles"]["i15"] == "Film 15, the sequel"

        live = _inspect(env, "u1", "--json", "--worker", f"http://127.0.0.1:{server.port}")
        assert live.returncode == 0, live.stderr
        assert json.loads(live.stdout)["history"]["recent"][:5] == MINE[::-1]

        text = _inspect(env, "u1", "--items", str(titles))
        assert text.returncode == 0, text.stderr
        assert "Film 15, the sequel" in text.stdout
        assert f"index version {listed['version']}" in text.stdout

        stranger = json.loads(_inspect(env, "nobody", "--json").stdout)
        assert stranger["list"]["source"] == "cold_start"
        assert stranger["history"] is None
    finally:
        server.close()
        worker.close()


def test_the_debug_endpoint_is_off_unless_asked() -> None:
    """By default the setting is off and the metrics port answers 404 under /debug/."""
    assert Settings().debug_endpoint is False
    from worker.observability.metrics import WorkerMetrics

    server = HealthServer(0, WorkerMetrics(), host="127.0.0.1")
    server.start(lambda: True, lambda: True)
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/debug/users/u1", timeout=5)
    finally:
        server.close()
    assert refused.value.code == 404
    assert refused.value.headers.get_content_type() == "text/plain"
