"""`recstream dashboard`: the Grafana dashboard's panels, drawn from `/metrics` scrapes.

Where Docker (and so Grafana) is not at hand, this scrapes a worker's
`/metrics` every few seconds, a demo's by default, and draws the same panels
with matplotlib, each computed the way its PromQL computes it (rates over a
window, quantiles from histogram buckets), so the README shows what an
operator sees. The panel titles are the dashboard JSON's (a test keeps them
in step).
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from prometheus_client.parser import text_string_to_metric_families

log = structlog.get_logger("recstream.dashboard")

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy/grafana/dashboards/recstream.json"
Key = tuple[str, tuple[tuple[str, str], ...]]  # sample name, sorted labels
Scrape = tuple[float, dict[Key, float]]  # scrape time, samples


def scrape(url: str) -> dict[Key, float]:
    """One `/metrics` read: every sample by name and labels."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  (an operator's URL)
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def record(url: str, interval_s: float, until: Callable[[], bool]) -> list[Scrape]:
    """Scrape every `interval_s` until `until()` or the endpoint goes away after answering.

    A failure before the first answer is waited out (the worker may still be starting).
    """
    scrapes: list[Scrape] = []
    while not until():
        began = time.monotonic()
        try:
            scrapes.append((time.time(), scrape(url)))
        except OSError as exc:
            if scrapes:
                log.info("scrape_stopped", url=url, error=str(exc), scrapes=len(scrapes))
                break
            log.warning("scrape_failed", url=url, error=str(exc))
        time.sleep(max(0.0, interval_s - (time.monotonic() - began)))
    return scrapes


def queried_metrics(path: Path = DASHBOARD) -> set[str]:
    """Every metric name the dashboard's PromQL expressions select.

    Label lists (`by (...)`), selectors (`{...}`), ranges (`[...]`) and strings are
    dropped first; what is left that is not a function call or a keyword is a metric.
    """
    names: set[str] = set()
    for panel in json.loads(path.read_text())["panels"]:
        for target in panel["targets"]:
            expr = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]', " ", target["expr"])
            expr = re.sub(
                r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr
            )
            for match in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", expr):
                if match.group(2) is None and match.group(1) not in _PROMQL_WORDS:
                    names.add(match.group(1))
    return names


_PROMQL_WORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan"}


def panel_titles(path: Path = DASHBOARD) -> list[str]:
    """The dashboard JSON's panel titles, in order."""
    return [panel["title"] for panel in json.loads(path.read_text())["panels"]]


@dataclass(frozen=True)
class Series:
    """The scrapes as aligned arrays: one column per scrape."""

    t: np.ndarray  # seconds since the first scrape
    wall: np.ndarray  # scrape times (epoch seconds)
    samples: list[dict[Key, float]]

    def values(self, name: str, fill: float = np.nan, **labels: str) -> np.ndarray:
        """Sum over every sample of `name` whose labels include `labels` (`fill` where none).

        A labelled counter is born at its first increment: `fill=0` counts that increment,
        which a rate over the born-at-1 series would miss.
        """
        want = set(labels.items())
        out = np.full(len(self.samples), fill)
        for n, samples in enumerate(self.samples):
            hits = [v for (k, ls), v in samples.items() if k == name and want <= set(ls)]
            if hits:
                out[n] = sum(hits)
        return out

    def label_values(self, name: str, label: str) -> list[str]:
        """Every value `label` takes on samples of `name`."""
        found = {dict(ls)[label] for s in self.samples for (k, ls) in s if k == name}
        return sorted(v for v in found if v is not None)

    def rate(self, values: np.ndarray, window_s: float) -> np.ndarray:
        """Per-second increase over the last `window_s` as PromQL's rate does."""
        out = np.full(len(values), np.nan)
        for n in range(len(values)):
            back = np.searchsorted(self.t, self.t[n] - window_s)
            if back < n:
                out[n] = (values[n] - values[back]) / (self.t[n] - self.t[back])
        return out

    def quantile(self, name: str, q: float, window_s: float) -> np.ndarray:
        """histogram_quantile(q, rate(name_bucket[window])): linear within the bucket."""
        les = sorted(
            {dict(ls)["le"] for s in self.samples for (k, ls) in s if k == f"{name}_bucket"},
            key=float,
        )
        if not les:
            return np.full(len(self.samples), np.nan)
        bounds = [float(le) for le in les]
        counts = np.stack([self.rate(self.values(f"{name}_bucket", le=le), window_s) for le in les])
        out = np.full(len(self.samples), np.nan)
        for n in range(len(self.samples)):
            cumulative = counts[:, n]
            if not np.isfinite(cumulative[-1]) or cumulative[-1] <= 0:
                continue
            rank = q * cumulative[-1]
            i = int(np.searchsorted(cumulative, rank))
            if bounds[i] == np.inf:  # PromQL: the highest finite bound
                out[n] = bounds[-2] if len(bounds) > 1 else np.nan
                continue
            lo, below = (bounds[i - 1], cumulative[i - 1]) if i > 0 else (0.0, 0.0)
            span = cumulative[i] - below
            out[n] = lo + (bounds[i] - lo) * ((rank - below) / span if span > 0 else 1.0)
        return out


def series_of(scrapes: list[Scrape]) -> Series:
    """Align the scrapes."""
    wall = np.array([t for t, _ in scrapes])
    return Series(wall - wall[0], wall, [s for _, s in scrapes])


def _since(stamps: np.ndarray) -> np.ndarray:
    """A timestamp gauge with 0 ("never") as NaN: the panels' `> 0`."""
    return np.where(stamps > 0, stamps, np.nan)


def _panels(s: Series, window_s: float) -> list[list[tuple[str, np.ndarray]]]:
    """Each panel's lines, in the dashboard's order, computed as its PromQL does."""
    rate = s.rate

    def mean_stage(stage: str) -> np.ndarray:
        total = rate(s.values("recstream_batch_seconds_sum", stage=stage), window_s)
        count = rate(s.values("recstream_batch_seconds_count", stage=stage), window_s)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean: np.ndarray = total / count
        return mean

    def per_label(name: str, label: str) -> list[tuple[str, np.ndarray]]:
        return [
            (v, rate(s.values(name, 0.0, **{label: v}), window_s))
            for v in s.label_values(name, label)
        ]

    evicted = [
        (f"{kind} {cause}", rate(s.values(name, 0.0, kind=kind, cause=cause), window_s))
        for name in ["recstream_rows_evicted_total"]
        for kind in s.label_values(name, "kind")
        for cause in s.label_values(name, "cause")
    ]
    return [
        [("all workers", rate(s.values("recstream_events_total"), window_s))],
        [("all workers", s.values("recstream_consumer_lag"))],
        [
            ("p50", s.quantile("recstream_click_to_redis_seconds", 0.5, window_s)),
            ("p99", s.quantile("recstream_click_to_redis_seconds", 0.99, window_s)),
        ],
        [
            (stage, mean_stage(stage))
            for stage in s.label_values("recstream_batch_seconds_count", "stage")
        ],
        per_label("recstream_dead_lettered_total", "reason"),
        [("users", s.values("recstream_users")), ("items", s.values("recstream_items"))],
        evicted,
        [("version", s.values("recstream_index_version"))],
        [
            ("index", s.wall - _since(s.values("recstream_index_built_timestamp_seconds"))),
            (
                "checkpoint",
                s.wall - _since(s.values("recstream_last_checkpoint_timestamp_seconds")),
            ),
        ],
        [("loss", s.values("recstream_learner_loss"))],
        [
            ("allocated", s.values("recstream_gpu_memory_allocated_bytes")),
            ("reserved", s.values("recstream_gpu_memory_reserved_bytes")),
        ],
        [("lists", rate(s.values("recstream_users_published_total"), window_s))],
    ]


def render(scrapes: list[Scrape], out: Path, window_s: float = 10.0, title: str = "") -> Path:
    """Draw every panel into one PNG at `out`."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    series = series_of(scrapes)
    titles = panel_titles()
    panels = _panels(series, window_s)
    cols = 3
    rows = -(-len(titles) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(15, 3.1 * rows), sharex=True)
    for ax, name, lines in zip(axes.flat, titles, panels, strict=True):
        ax.set_title(name, fontsize=10)
        drawn = False
        for label, values in lines:
            if np.isfinite(values).any():
                ax.plot(series.t, values, label=label, linewidth=1.4)
                drawn = True
        if drawn:
            ax.legend(fontsize=7, loc="best")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in axes.flat[len(titles) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("seconds", fontsize=8)
    fig.suptitle(title or "recstream dashboard (from /metrics scrapes)", fontsize=12)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


@dataclass(frozen=True)
class DashboardOptions:
    """Where to scrape (a URL, or a demo of its own), how often, and where to draw."""

    out: Path
    url: str | None = None
    duration_s: float = 60.0  # with `url`
    interval_s: float = 1.0
    events: int = 60_000
    rate: float = 1_000.0
    window_s: float = 10.0


def run_dashboard(options: DashboardOptions) -> dict[str, Any]:
    """Scrape a worker (or a demo run here) and render the panels; returns the demo's report."""
    if options.url is not None:
        end = time.monotonic() + options.duration_s
        scrapes = record(options.url, options.interval_s, lambda: time.monotonic() > end)
        render(scrapes, options.out, options.window_s, f"recstream at {options.url}")
        return {"scrapes": len(scrapes)}
    import tempfile

    from worker.tools.demo import DemoOptions, run_demo

    port: list[int] = []
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as checkpoints:
        demo = DemoOptions(
            events=options.events,
            rate=options.rate,
            metrics_port=0,
            checkpoint_dir=Path(checkpoints),
            on_metrics=port.append,
        )
        runner = threading.Thread(target=lambda: report.update(run_demo(demo)), daemon=True)
        runner.start()
        while not port and runner.is_alive():
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port[0]}/metrics" if port else ""
        scrapes = record(url, options.interval_s, lambda: not runner.is_alive()) if port else []
        runner.join()
    if len(scrapes) < 2:  # noqa: PLR2004  (a rate needs two)
        raise RuntimeError("the demo ended before two scrapes")
    title = (
        f"recstream demo: {options.events:,} clicks offered at {options.rate:,.0f}/s"
        f" on {report.get('device', '?')}, scraped every {options.interval_s:g} s,"
        f" rates over {options.window_s:g} s"
    )
    render(scrapes, options.out, options.window_s, title)
    return {**report, "scrapes": len(scrapes)}
