"""Unit tests for `recstream eval`'s command line: tables, pages, plots and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from worker.cli import main


def _tiny_csv(tmp_path: Path) -> Path:
    data = tmp_path / "tiny.csv"
    rows = [f"{u},{(u * 7 + n) % 30},5,{n * 10 + u}" for n in range(20) for u in range(15)]
    data.write_text("userId,movieId,rating,timestamp\r\n" + "\r\n".join(rows) + "\r\n")
    return data


def test_cli_eval_prints_a_table_per_dataset_and_the_ratio(tmp_path: Path) -> None:
    """`recstream eval FILE` (CSV with header and CRLF) prints each method's row and the ratio."""
    data = _tiny_csv(tmp_path)
    result = CliRunner().invoke(
        main, ["eval", str(data), "--methods", "recstream,recent-popular", "--batch-size", "16"]
    )
    assert result.exit_code == 0, result.output
    assert "| recstream |" in result.output
    assert "| recent-popular (last 10,000) |" in result.output
    assert "recstream HR@10 / best peer HR@10:" in result.output
    assert not (tmp_path / "img").exists()  # no --out: nothing written


def test_cli_eval_writes_the_page_and_a_plot(tmp_path: Path) -> None:
    """`recstream eval FILE --out` runs the chosen methods and writes markdown and a PNG."""
    pytest.importorskip("matplotlib")
    data = _tiny_csv(tmp_path)
    out = tmp_path / "accuracy.md"
    result = CliRunner().invoke(
        main,
        [
            "eval",
            str(data),
            "--methods",
            "recstream,most-popular,isgd",
            "--batch-size",
            "16",
            "--out",
            str(out),
            "--img-dir",
            str(tmp_path / "img"),
        ],
        env={"RECSTREAM_DIM": "8"},
    )
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "| recstream |" in page
    assert "| ISGD |" in page
    assert "dim 8" in page  # the Engine was built from RECSTREAM_* settings
    assert (tmp_path / "img" / "accuracy-tiny.png").stat().st_size > 1000
    assert "recstream HR@10 / best peer HR@10" in result.output


def test_cli_eval_rejects_unknown_methods(tmp_path: Path) -> None:
    """A method name the eval does not know is a usage error, exit code 2."""
    data = tmp_path / "tiny.csv"
    data.write_text("1,2,3\n")
    result = CliRunner().invoke(main, ["eval", str(data), "--methods", "svd"])
    assert result.exit_code == 2


def test_cli_eval_rejects_unknown_synthetic_streams() -> None:
    """A synthetic stream name the eval does not know is a usage error, exit code 2."""
    result = CliRunner().invoke(
        main, ["eval", "--synthetic-events", "100", "--synthetic", "genres,spirals"]
    )
    assert result.exit_code == 2
    assert "spirals" in result.output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--synthetic-events", "100", "--synthetic", ""], "at least one of genres, clusters"),
        (["--synthetic-events", "100", "--recent-windows", "3000,0"], "0 is not in the range"),
        (["--synthetic-events", "100", "--methods", ","], "expected a comma-separated list"),
        ([], "give at least one file or --synthetic-events"),
        (
            ["--synthetic-events", "100", "--through-kafka", "--ablations", "50"],
            "run it without --through-kafka",
        ),
    ],
)
def test_cli_eval_refuses_what_it_cannot_run(args: list[str], named: str) -> None:
    """No stream, no synthetic kind, no method or a window below 1: a usage error, exit code 2."""
    result = CliRunner().invoke(main, ["eval", *args])
    assert result.exit_code == 2
    assert named in result.output


def test_cli_eval_runs_item_knn_on_both_synthetic_streams() -> None:
    """`--synthetic-events N` generates the genre and the cluster stream; item-kNN runs on both."""
    pytest.importorskip("scipy")
    result = CliRunner().invoke(
        main,
        ["eval", "--synthetic-events", "3000", "--methods", "recstream,most-popular,item-knn"],
        env={"RECSTREAM_DIM": "8"},
    )
    assert result.exit_code == 0, result.output
    assert "synthetic-genres-3000: 3,000 events" in result.output
    assert "synthetic-clusters-3000: 3,000 events" in result.output
    assert result.output.count("| item-kNN |") == 2
    assert "recstream ahead of every peer for good:" in result.output


def test_cli_knn_defaults_are_the_peers_defaults() -> None:
    """The CLI's item-kNN defaults are KnnConfig's, so the page and `--help` agree."""
    from worker.tools.evaluate.command import evaluate
    from worker.tools.evaluate.knn import KnnConfig

    params = {p.name: p.default for p in evaluate.params}
    config = KnnConfig()
    assert (params["knn_window"], params["knn_recent"], params["knn_alpha"]) == (
        config.window,
        config.recent,
        config.alpha,
    )


def test_plots_go_beside_the_page_unless_told_otherwise(tmp_path: Path) -> None:
    """Without --img-dir the plots go to img/ beside --out, never into the current docs/."""
    from worker.config.settings import Settings
    from worker.tools.evaluate.options import EvalOptions

    page = tmp_path / "elsewhere" / "accuracy.md"
    beside = EvalOptions([], Settings(), out=page)
    assert beside.plots == tmp_path / "elsewhere" / "img"
    assert EvalOptions([], Settings(), out=page, img_dir=tmp_path / "p").plots == tmp_path / "p"
