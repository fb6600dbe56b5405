"""What a process costs to start: `recstream --help`, in CPU seconds, against a bare interpreter.

A timing target, so it lives here and not in the tests: on a shared machine
even CPU time depends on the hardware and the neighbours' cache pressure. The
tests keep the part that never varies (which modules `--help` imports).
"""

from __future__ import annotations

import resource
import subprocess
import sys

from worker.tools.bench.stages import Row

HELP_TARGET_CPU_S = 0.3  # what `--help` should stay under, interpreter start included


def _cpu_seconds(argv: list[str]) -> float:
    """CPU seconds (user + system) one child process takes, start to exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, capture_output=True, check=True)  # noqa: S603  (argv: this interpreter)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bench_help(repeats: int) -> list[Row]:
    """Best of `repeats` CPU seconds of `recstream --help` and of `python -c pass`, as rates."""
    ours = min(_cpu_seconds([sys.executable, "-m", "worker.cli", "--help"]) for _ in range(repeats))
    bare = min(_cpu_seconds([sys.executable, "-c", "pass"]) for _ in range(repeats))
    verdict = "met" if ours < HELP_TARGET_CPU_S else "missed"
    return [
        Row(
            "startup",
            "`recstream --help` (processes per CPU second)",
            1 / max(ours, 1e-6),
            "starts/s",
            "bare interpreter",
            1 / max(bare, 1e-6),
            f"{ours * 1000:.0f} ms of CPU, best of {repeats}; target < "
            f"{HELP_TARGET_CPU_S * 1000:.0f} ms: {verdict}",
        )
    ]


__all__ = ["HELP_TARGET_CPU_S", "bench_help"]
