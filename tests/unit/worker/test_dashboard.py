"""The shipped dashboard and its matplotlib stand-in: same panels, PromQL-like arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from worker.tools.dashboard import (
    DASHBOARD,
    _panels,
    panel_titles,
    queried_metrics,
    render,
    series_of,
)

ROOT = Path(__file__).resolve().parents[3]


def _histogram_scrapes() -> list[tuple[float, dict]]:
    """Two scrapes 10 s apart: 100 observations, 50 under 0.1 s and 50 between 0.1 and 0.5 s."""
    name = "recstream_click_to_redis_seconds_bucket"
    first = {(name, (("le", le),)): 0.0 for le in ("0.1", "0.5", "+Inf")}
    second = {(name, (("le", "0.1"),)): 50.0, (name, (("le", "0.5"),)): 100.0}
    second[(name, (("le", "+Inf"),))] = 100.0
    counter = ("recstream_events_total", ())
    return [(1000.0, {**first, counter: 0.0}), (1010.0, {**second, counter: 500.0})]


def test_quantile_interpolates_within_the_bucket_as_promql_does() -> None:
    """p50 sits at the first bucket's bound, p75 half-way through the second; rate is per second."""
    series = series_of(_histogram_scrapes())
    name = "recstream_click_to_redis_seconds"
    assert series.quantile(name, 0.5, 10.0)[1] == pytest.approx(0.1)
    assert series.quantile(name, 0.75, 10.0)[1] == pytest.approx(0.3)
    assert series.rate(series.values("recstream_events_total"), 10.0)[1] == pytest.approx(50.0)


def test_the_figure_draws_one_panel_per_dashboard_panel(tmp_path: Path) -> None:
    """The renderer computes as many panels as the dashboard has, and writes a PNG."""
    series = series_of(_histogram_scrapes())
    assert len(_panels(series, 10.0)) == len(panel_titles())
    out = render(_histogram_scrapes(), tmp_path / "d.png")
    assert out.read_bytes().startswith(b"\x89PNG")


def test_dashboard_names_the_provisioned_datasource_and_the_asked_for_panels() -> None:
    """Every panel uses the provisioned Prometheus uid, and the issue's figures are all there."""
    dashboard = json.loads(DASHBOARD.read_text())
    provisioned = YAML(typ="safe").load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    assert all(p["datasource"]["uid"] == uid for p in dashboard["panels"])
    queried = queried_metrics()
    for needed in (
        "recstream_events_total",
        "recstream_consumer_lag",
        "recstream_click_to_redis_seconds_bucket",
        "recstream_batch_seconds_sum",
        "recstream_dead_lettered_total",
        "recstream_users",
        "recstream_items",
        "recstream_rows_evicted_total",
        "recstream_index_version",
        "recstream_index_built_timestamp_seconds",
        "recstream_last_checkpoint_timestamp_seconds",
        "recstream_learner_loss",
        "recstream_gpu_memory_allocated_bytes",
    ):
        assert needed in queried, needed


def test_compose_mounts_the_shipped_monitoring_files() -> None:
    """Prometheus and Grafana mount files that exist, and Prometheus scrapes the worker's port."""
    compose = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for service in ("prometheus", "grafana"):
        for volume in services[service]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    scrape = YAML(typ="safe").load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    sd = scrape["scrape_configs"][0]["dns_sd_configs"][0]
    assert sd["names"] == ["worker"]
    assert sd["port"] == int(services["worker"]["environment"]["RECSTREAM_METRICS_PORT"])
