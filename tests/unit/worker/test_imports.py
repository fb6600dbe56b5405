"""Light imports: `recstream --help` and the Engine load only what they use.

What `--help` costs in CPU seconds is a timing target: `make bench` measures it
(`worker/tools/bench/startup.py`), since it depends on the machine.
"""

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


def test_every_commands_help_loads_no_heavy_module() -> None:
    """Each command's module imports click alone: its own --help loads none of them either."""
    loaded = _loaded_after(
        "from click.testing import CliRunner\n"
        "from worker.cli import COMMANDS, main\n"
        "for name in COMMANDS:\n"
        "    result = CliRunner().invoke(main, [name, '--help'])\n"
        "    assert result.exit_code == 0, (name, result.output)"
    )
    assert not {name for name in loaded if name.split(".")[0] in HEAVY}


def test_settings_load_no_model_code() -> None:
    """Reading the settings (`recstream healthcheck`) takes the learner's table, not torch."""
    loaded = _loaded_after(
        "import contextlib\nfrom worker.config.settings import load_settings\n"
        "with contextlib.suppress(Exception):\n    load_settings()"  # whatever the environment
    )
    assert "models.learner_config" in loaded  # the check itself imports what it says
    assert not {name for name in loaded if name.split(".")[0] in ("torch", "numpy", "faiss")}


def test_engine_imports_neither_client() -> None:
    """The Engine (no I/O) reaches Kafka and Redis through nothing it imports."""
    loaded = _loaded_after("import worker.engine.engine")
    assert "confluent_kafka" not in loaded
    assert "redis" not in loaded
    assert "torch" in loaded  # the check itself imports what it says
