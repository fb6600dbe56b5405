"""Light imports: `recstream --help` and the Engine load only what they use."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "faiss", "confluent_kafka", "redis", "pydantic", "numpy")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_help_loads_no_heavy_module() -> None:
    """--help parses arguments only: none of torch, faiss, the clients or pydantic."""
    loaded = _loaded_after(
        "from click.testing import CliRunner\n"
        "from worker.cli import main\n"
        "assert CliRunner().invoke(main, ['--help']).exit_code == 0"
    )
    assert not {name for name in loaded if name.split(".")[0] in HEAVY}


def test_help_imports_in_under_300_ms() -> None:
    """The CLI's own import tree (python -X importtime, cumulative) stays under 0.3 s."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "worker.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Usage:" in result.stdout
    fields = [line.split("|") for line in result.stderr.splitlines() if "|" in line]
    top_level = [int(f[1]) for f in fields[1:] if not f[2].startswith("  ")]  # [0]: the header
    total_us = sum(top_level)
    assert 0 < total_us < 300_000


def test_engine_imports_neither_client() -> None:
    """The Engine (no I/O) reaches Kafka and Redis through nothing it imports."""
    loaded = _loaded_after("import worker.engine")
    assert "confluent_kafka" not in loaded
    assert "redis" not in loaded
    assert "torch" in loaded  # the check itself imports what it says
