"""`recstream bench`: the benchmark suite's options (`suite.py` runs it)."""

from __future__ import annotations

from pathlib import Path

import click

from worker.commands.common import tool_logging


@click.command("bench")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--quick", is_flag=True, help="About a minute: fewer sizes and repeats.")
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Interactions file for the whole-path replay (default: synthetic).",
)
@click.option("--out", type=click.Path(path_type=Path), default=Path("docs/benchmarks-cpu.md"))
@click.option("--plot", type=click.Path(path_type=Path), default=Path("docs/img/bench-cpu.png"))
@click.option("--title", default="CPU", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar (none either when not a terminal).")
def bench(
    device: str, quick: bool, data: Path | None, out: Path, plot: Path, title: str, quiet: bool
) -> None:
    """Benchmark every stage and the whole path, with baselines; write markdown and a PNG."""
    from worker.tools.bench.suite import BenchOptions, run_bench

    tool_logging("info")
    run_bench(BenchOptions(device, quick, data, out, plot, title, quiet))
    click.echo(out.read_text())
