"""The `recstream` group and what its commands share: lazy loading, comma lists, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from worker import cli
from worker.cli import COMMANDS, main
from worker.commands.common import CommaList


def test_every_command_loads_under_its_own_name() -> None:
    """Each entry of `COMMANDS` imports to a click command of that name; --help lists them all."""
    ctx = click.Context(main)
    assert main.list_commands(ctx) == sorted(COMMANDS)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command)
        assert command.name == name
    assert main.get_command(ctx, "no-such-command") is None


def test_the_module_docstring_lists_every_command_and_its_file() -> None:
    """worker/cli.py's docstring has one line per command, naming the file that defines it."""
    lines = {line.split()[0]: line for line in (cli.__doc__ or "").splitlines()[2:] if line}
    for name, target in COMMANDS.items():
        path = target.partition(":")[0].replace(".", "/") + ".py"
        assert name in lines, name
        assert lines[name].rstrip().endswith(path), (name, path)


@click.command()
@click.option("--names", type=CommaList(click.Choice(["a", "b"])), default="a,b")
@click.option("--sizes", type=CommaList(click.IntRange(min=1)), default="3")
@click.option("--maybe", type=CommaList(click.Choice(["x"]), empty=True), default="")
def _echo(names: tuple[str, ...], sizes: tuple[int, ...], maybe: tuple[str, ...]) -> None:
    click.echo(repr((names, sizes, maybe)))


def test_comma_lists_are_stripped_converted_and_default_from_text() -> None:
    """Parts are stripped, empty ones dropped, each converted by its type; defaults too."""
    assert CliRunner().invoke(_echo, []).output.strip() == "(('a', 'b'), (3,), ())"
    result = CliRunner().invoke(_echo, ["--names", " b, ,a ", "--sizes", "10,2,", "--maybe", "x"])
    assert result.output.strip() == "(('b', 'a'), (10, 2), ('x',))"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--names", "a,c"], "'c' is not one of 'a', 'b'"),
        (["--sizes", "3,0"], "0 is not in the range x>=1"),
        (["--sizes", "3,x"], "'x' is not a valid integer"),
        (["--names", " , "], "expected a comma-separated list"),
    ],
)
def test_a_bad_part_is_a_usage_error_naming_it(args: list[str], named: str) -> None:
    """A part its type refuses, or no part at all, is exit 2 with the option and the part named."""
    result = CliRunner().invoke(_echo, args)
    assert result.exit_code == 2
    assert f"Invalid value for '{args[0]}'" in result.output
    assert named in result.output


def test_healthcheck_as_a_module_with_metrics_off_is_one_line_and_exit_2() -> None:
    """`python -m worker.cli healthcheck` reads the port from the settings (0: nothing to ask)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSTREAM_")}
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "healthcheck"],
        env={**env, "RECSTREAM_METRICS_PORT": "0"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "healthcheck: RECSTREAM_METRICS_PORT is 0 (metrics off): nothing to ask"
    ]
