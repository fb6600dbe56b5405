"""The `recstream` command: a group whose commands live beside what they run.

    run             the service, until SIGTERM                  worker/commands/run.py
    healthcheck     the local worker's /healthz as exit code    worker/commands/healthcheck.py
    replay          a timestamped file to the clicks topic      worker/tools/replay_command.py
    demo            synthetic clicks on embedded servers        worker/tools/demo_command.py
    dashboard       the Grafana panels from /metrics scrapes    worker/tools/dashboard_command.py
    bench           stage and whole-path benchmarks             worker/tools/bench/command.py
    eval            prequential HR/NDCG/MRR@10 against peers    worker/tools/evaluate/command.py
    eval-warm       cold against warm starts                    worker/tools/evaluate/command.py
    inspect         one user's list and the history behind it   worker/tools/inspect_command.py
    import-vectors  a checkpoint from offline vectors           worker/tools/vectors_command.py
    export-vectors  the newest checkpoint's vectors to a file   worker/tools/vectors_command.py

A command's module is imported only when click asks for that command (to run it,
or for its line in `recstream --help`), and imports only click at its top, so
`--help` loads none of torch, faiss, the clients or pydantic
(tests/unit/worker/test_imports.py). What the commands share is `worker/commands/common.py`.
"""

from __future__ import annotations

import importlib

import click

# Each command's name and where it is defined, as "module:attribute".
COMMANDS: dict[str, str] = {
    "run": "worker.commands.run:run",
    "healthcheck": "worker.commands.healthcheck:healthcheck",
    "replay": "worker.tools.replay_command:replay",
    "demo": "worker.tools.demo_command:demo",
    "dashboard": "worker.tools.dashboard_command:dashboard",
    "bench": "worker.tools.bench.command:bench",
    "eval": "worker.tools.evaluate.command:evaluate",
    "eval-warm": "worker.tools.evaluate.command:eval_warm",
    "inspect": "worker.tools.inspect_command:inspect_user",
    "import-vectors": "worker.tools.vectors_command:import_vectors",
    "export-vectors": "worker.tools.vectors_command:export_vectors",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module (`COMMANDS`) only once it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command, sorted, without importing any."""
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The named command, its module imported now."""
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{COMMANDS[cmd_name]} is not a click command")
        return command


@click.group(cls=LazyGroup)
def main() -> None:
    """recstream: clicks from Kafka, online learning, FAISS, fresh top-K lists in Redis."""
    from worker import heap

    heap.STATE = heap.keep_freed_memory()  # before any command allocates (worker/heap.py)


if __name__ == "__main__":
    main()
