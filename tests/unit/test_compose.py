"""docker-compose.yml: valid against the Compose spec, documented, and wired for a GPU."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
README = ROOT / "README.md"


def _check_jsonschema() -> str:
    """The check-jsonschema executable of this interpreter's environment, else from PATH."""
    beside = Path(sys.executable).parent / "check-jsonschema"
    if beside.is_file():
        return str(beside)
    found = shutil.which("check-jsonschema")
    if found is None:
        pytest.fail("check-jsonschema is not installed (it is in the `dev` extra)")
    return found


def _services() -> dict[str, Any]:
    """The `services` mapping of docker-compose.yml."""
    compose = YAML(typ="safe").load(COMPOSE.read_text(encoding="utf-8"))
    services: dict[str, Any] = compose["services"]
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whether written as a map or as a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.partition("=") for item in env)
        return {key: value for key, _, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def test_compose_matches_compose_spec() -> None:
    """docker-compose.yml validates against the vendored Compose specification schema."""
    result = subprocess.run(
        [_check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"check-jsonschema failed:\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )


def test_compose_worker_settings_are_documented() -> None:
    """Every RECSTREAM_* variable the compose worker sets is named in README.md."""
    keys = [key for key in _environment(_services()["worker"]) if key.startswith("RECSTREAM_")]
    assert keys, "the worker service sets no RECSTREAM_* variables"
    assert README.is_file(), f"{README} is missing"
    readme = README.read_text(encoding="utf-8")
    missing = [key for key in keys if f"`{key}`" not in readme]
    assert not missing, f"README.md does not document: {', '.join(missing)}"


def test_compose_reserves_a_gpu_for_the_worker() -> None:
    """The worker reserves an NVIDIA GPU, and Kafka runs in KRaft mode with a controller."""
    services = _services()
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        device.get("driver") == "nvidia" and "gpu" in device.get("capabilities", [])
        for device in devices
    ), f"no nvidia GPU reservation in {devices!r}"
    roles = _environment(services["kafka"])["KAFKA_PROCESS_ROLES"]
    assert "controller" in {role.strip() for role in roles.split(",")}, roles


def test_compose_runs_three_workers_on_shared_state() -> None:
    """Three worker replicas in scale-out mode, after a job that creates the 12-partition topics."""
    services = _services()
    worker = services["worker"]
    assert worker["deploy"]["replicas"] == 3
    env = _environment(worker)
    assert env["RECSTREAM_SCALE_OUT"] == "true"
    script = "\n".join(services["topics"]["command"])
    assert "--topic clicks --partitions 12" in script
    assert f"--topic {env['RECSTREAM_KAFKA_STATE_TOPIC']} --partitions 12" in script
    assert "cleanup.policy=compact" in script
    assert f"--topic {env['RECSTREAM_KAFKA_ITEMS_TOPIC']} --partitions 1" in script
