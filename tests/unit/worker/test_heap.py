"""The heap tuning: freed temporaries stay mapped, and the operator's glibc variables win.

Each check runs in a fresh interpreter: mallopt changes the whole process, and the
page-fault count must not include what pytest itself allocated.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt's thresholds are glibc's",
)

# A batch's pattern: six 4 MB temporaries live at once, then all freed. Untuned, glibc maps
# each afresh (or trims the heap's top once they are freed), so each round faults in every
# page again (about 5,800); prints the minor faults per round after two warm rounds.
_ROUNDS = """
import resource
from worker import heap
print(heap.keep_freed_memory())
import numpy as np
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def batch():
    held = [np.ones(1_000_000, dtype=np.float32) for _ in range(6)]
    return sum(float(h[-1]) for h in held)
batch(); batch()
start = faults()
for _ in range(20):
    batch()
print((faults() - start) / 20)
"""


def _run(env: dict[str, str]) -> tuple[str, float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", _ROUNDS],
        capture_output=True,
        text=True,
        check=True,
        env={**clean, **env},
    ).stdout.split()
    return out[0], float(out[1])


@glibc_only
def test_tuned_heap_reuses_freed_pages() -> None:
    """After tuning, a batch's 24 MB of temporaries reuse pages: next to no faults per round."""
    state, per_round = _run({})
    assert state == "tuned"
    pages = 24_000_000 / 4096
    assert per_round < pages / 10


def test_operator_variables_win(monkeypatch: pytest.MonkeyPatch) -> None:
    """A MALLOC_* variable set by the operator leaves glibc as they configured it."""
    from worker import heap

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert heap.keep_freed_memory() == "operator"


@glibc_only
def test_cli_tunes_before_a_command_runs() -> None:
    """`recstream <command>` tunes the heap first, so the worker's start-up log can say so."""
    code = (
        "from click.testing import CliRunner\n"
        "from worker.cli import main\n"
        "from worker import heap\n"
        "CliRunner().invoke(main, ['healthcheck', '--help'])\n"
        "print(heap.STATE)"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=clean
    ).stdout.split()
    assert out[-1] == "tuned"
