"""Unit tests for `worker.tools.evaluate.ablations`: the variants, the prefix and the table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from worker.cli import main
from worker.config.settings import Settings, with_values
from worker.engine.candidate_names import GROUPS, SOURCES
from worker.tools.evaluate.ablations import (
    WHOLE,
    Ablation,
    ablation_lines,
    change_error,
    head,
    run_ablations,
    variants,
)
from worker.tools.evaluate.data import encode
from worker.tools.evaluate.protocol import Pairs
from worker.tools.replay import Interactions


def test_each_source_but_the_vector_one_and_each_feature_group_is_left_out_once() -> None:
    """The whole first, then one variant per source (not the vector one) and per group."""
    found = variants(Settings())
    assert found[0].name == WHOLE
    assert not found[0].values
    kept = [v.values["candidates_sources"] for v in found[1:5]]
    assert [set(SOURCES) - set(k) for k in kept] == [{s} for s in SOURCES if s != "vector"]  # type: ignore[call-overload]
    assert [v.values["candidates_ranker_drop"] for v in found[5:]] == [(g,) for g in GROUPS]
    for variant in found:  # every variant is a valid configuration
        with_values(Settings(), **variant.values)


def test_parts_the_settings_leave_out_are_not_ablated_again() -> None:
    """A source already off and a group already zeroed get no line; the rest keep them off."""
    settings = with_values(
        Settings(), candidates_sources=("vector", "covisit"), candidates_ranker_drop=("user",)
    )
    found = {v.name: v.values for v in variants(settings)}
    assert "without trending" not in found
    assert "ranker without user features" not in found
    assert found["without covisit"] == {"candidates_sources": ("vector",)}
    assert found["ranker without vector features"] == {"candidates_ranker_drop": ("user", "vector")}


def test_a_prefix_is_coded_as_a_shorter_file_would_be() -> None:
    """Ids and flags of the first events only: items met later are not in the prefix."""
    users, items = ["a", "b", "a", "c", "b"], ["x", "y", "y", "z", "x"]
    stream = encode("s", Interactions(users, items, np.arange(5, dtype=np.float64)))
    prefix = head(stream, 3)
    again = encode("s", Interactions(users[:3], items[:3], np.arange(3, dtype=np.float64)))
    assert prefix.user_ids.tolist() == again.user_ids.tolist() == ["a", "b"]
    assert prefix.item_ids.tolist() == ["x", "y"]
    assert np.array_equal(prefix.users, again.users)
    assert np.array_equal(prefix.items, again.items)
    assert np.array_equal(prefix.counted, again.counted)
    assert len(head(stream, 100)) == 5


def test_the_table_gives_each_variants_change_against_the_whole() -> None:
    """Signed percentages against the whole, ± their paired error; none on the whole's line."""
    users = np.arange(4, dtype=np.int64)
    whole_hits = np.array([True, True, False, False])
    whole = Ablation(
        WHOLE,
        0.5,
        0.5,
        4,
        4,
        hit_users=users,
        hits=whole_hits,
        pair_hits=Pairs(np.zeros(4, dtype=np.int64), users, whole_hits),
    )
    # one hit lost on the next click, one pair gained on the long horizon
    less = np.array([True, False, False, False])
    more = np.array([True, True, True, False])
    at = np.zeros(4, dtype=np.int64)
    variant = Ablation(
        "without covisit", 0.25, 0.75, 4, 4, pair_hits=Pairs(at, users, more), hits=less
    )
    lines = ablation_lines([whole, variant], 30_000)
    assert "first 30,000 events" in lines[0]
    assert "4 events and 4 user-checkpoint pairs" in lines[0]
    # differences (0, -1, 0, 0): mean -0.25, centred sums squared 0.75, x 4/3 / 16 = 1/16,
    # so a standard error of 0.25: 50 % of the whole's 0.5
    assert f"| {WHOLE} | 0.5000 |  | 0.5000 |  |" in lines
    assert "| without covisit | 0.2500 | -50.0 % ± 50.0 | 0.7500 | +50.0 % ± 50.0 |" in lines


def test_a_table_without_the_hits_gives_the_changes_alone() -> None:
    """Figures read back without their events (none scored) still give their change."""
    lines = ablation_lines(
        [Ablation(WHOLE, 0.1, 0.5, 10_000, 400), Ablation("without covisit", 0.08, 0.55)], 30_000
    )
    assert "| without covisit | 0.0800 | -20.0 % | 0.5500 | +10.0 % |" in lines


def test_a_change_s_error_is_relative_to_the_whole() -> None:
    """The paired error over the whole's rate: a change read in percent, as the table shows it."""
    whole = np.array([True, True, False, False])
    variant = np.array([True, False, False, False])
    assert change_error(variant, whole, np.arange(4)) == pytest.approx(0.5)  # 0.25 / 0.5
    assert np.isnan(change_error(variant, np.zeros(4, dtype=bool), np.arange(4)))


def test_ablations_replay_every_variant_on_the_prefix() -> None:
    """A real replay per variant, in process: a figure each, and not all the same."""
    rng = np.random.default_rng(3)
    users = [f"u{u}" for u in rng.integers(0, 40, 900)]
    items = [f"i{i}" for i in rng.zipf(1.5, 900) % 60]
    stream = encode("s", Interactions(users, items, np.arange(900, dtype=np.float64)))
    settings = with_values(Settings(), dim=8)
    found = run_ablations(stream, settings, 600, batch_size=32, processes=1)
    assert [a.variant for a in found] == [v.name for v in variants(settings)]
    for a in found:
        assert 0 <= a.hr <= 1
        assert 0 <= a.long_horizon <= 1
        assert a.events > 0
        assert a.pairs > 0
        # the events and pairs behind the figures, for the paired errors
        assert a.hits.size == a.hit_users.size == a.events
        assert a.hits.mean() == pytest.approx(a.hr)
        assert a.pair_hits.hits.size == a.pair_hits.users.size == a.pairs
        assert a.pair_hits.hits.mean() == pytest.approx(a.long_horizon)
    assert len({(a.hr, a.long_horizon) for a in found}) > 1  # the variants are not one model


def test_cli_eval_writes_the_ablations_under_each_stream(tmp_path: Path) -> None:
    """`--ablations N` adds the table to the page, from variants run side by side."""
    pytest.importorskip("matplotlib")
    data = tmp_path / "tiny.csv"
    rows = [f"{u},{(u * 7 + n) % 30},5,{n * 10 + u}" for n in range(20) for u in range(15)]
    data.write_text("userId,movieId,rating,timestamp\r\n" + "\r\n".join(rows) + "\r\n")
    out = tmp_path / "accuracy.md"
    result = CliRunner().invoke(
        main,
        ["eval", str(data), "--methods", "recstream", "--ablations", "200", "--out", str(out)],
        env={"RECSTREAM_DIM": "8"},
    )
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "Ablations on the first 200 events" in page
    assert "| without successors |" in page
    assert "| ranker without popularity features |" in page
