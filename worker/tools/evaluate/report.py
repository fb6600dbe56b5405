"""Results as markdown tables, where recstream leads for good, and a PNG of HR@10 per window."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from worker.tools.evaluate.data import IntArray, Stream
from worker.tools.evaluate.paired import paired_error
from worker.tools.evaluate.protocol import K, Outcome


@dataclass(frozen=True)
class DatasetResult:
    """Every method on one stream, and what the stream is."""

    name: str
    events: int
    users: int
    items: int
    headline_events: int
    outcomes: list[Outcome]
    plot: Path | None = None
    ablations: tuple[str, ...] = ()  # markdown lines (`worker.tools.evaluate.ablations`)
    # the user of each scored event, in stream order (the outcomes' `hits`)
    headline_users: IntArray = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False, compare=False
    )

    @classmethod
    def of(cls, stream: Stream, outcomes: list[Outcome], name: str | None = None) -> DatasetResult:
        """The outcomes on `stream`, described by the stream (under `name` if given)."""
        return cls(
            name=stream.name if name is None else name,
            events=len(stream),
            users=stream.n_users,
            items=stream.n_items,
            headline_events=int(stream.headline.sum()),
            outcomes=outcomes,
            headline_users=stream.headline_users,
        )


def slug(name: str) -> str:
    """A file-name-safe form of a dataset name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def ratio_to_best_peer(
    result: DatasetResult, ours: str = "recstream", *, long_horizon: bool = False
) -> float:
    """Recstream's HR@K over the best other method's (NaN without both), either horizon."""

    def hr(outcome: Outcome) -> float:
        return outcome.long_horizon if long_horizon else outcome.headline.hr

    mine = next((o for o in result.outcomes if o.method == ours), None)
    peer = best_peer(result, long_horizon=long_horizon)
    if mine is None or peer is None or hr(peer) == 0:
        return float("nan")
    return hr(mine) / hr(peer)


def first_window_ahead(result: DatasetResult, ours: str = "recstream") -> int | None:
    """The first window from which `ours` has a windowed HR@K >= every peer's, there and after.

    0-based; None without `ours` or peers, or when `ours` is behind in the last
    window. A window nobody was scored in (NaN) neither breaks nor makes a lead.
    """
    mine = next((o for o in result.outcomes if o.method == ours), None)
    peers = [o for o in result.outcomes if not o.method.startswith("recstream")]
    if mine is None or not peers:
        return None
    first = None
    for window in range(len(mine.windows) - 1, -1, -1):
        hr = mine.windows[window].hr
        if math.isnan(hr):
            continue
        theirs = (p.windows[window].hr for p in peers if window < len(p.windows))
        if hr < max((h for h in theirs if not math.isnan(h)), default=hr):
            break
        first = window
    return first


def ahead_line(result: DatasetResult) -> str:
    """Where recstream takes the lead for good, in words ("" without recstream or peers)."""
    first = first_window_ahead(result)
    windows = next((len(o.windows) for o in result.outcomes if o.method == "recstream"), 0)
    if not windows or all(o.method.startswith("recstream") for o in result.outcomes):
        return ""
    if first is None:
        return "recstream ahead of every peer for good: **never** (behind one in the last window)."
    return (
        f"recstream ahead of every peer for good: **from window {first + 1} of {windows}** "
        f"(its windowed HR@{K} is at or above every peer's from {first / windows:.0%} of the "
        "stream on)."
    )


def table(result: DatasetResult) -> list[str]:
    """One markdown table: a row per method."""
    lines = [
        (
            f"| method | HR@{K} | NDCG@{K} | MRR@{K} | long-horizon HR@{K} | coverage | events/s "
            "| re-consumed (hits) |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for o in result.outcomes:
        s = o.headline
        lines.append(
            f"| {o.method} | {s.hr:.4f} | {s.ndcg:.4f} | {s.mrr:.4f} | {o.long_horizon:.4f} "
            f"| {o.coverage:.1%} "
            f"| {o.events_per_s:,.0f} | {o.reconsumed:,} ({o.reconsumed_hits:,}) |"
        )
    return lines


def best_peer(result: DatasetResult, *, long_horizon: bool = False) -> Outcome | None:
    """The peer with the highest HR@K on either horizon (None without one)."""
    peers = [o for o in result.outcomes if not o.method.startswith("recstream")]
    if long_horizon:
        peers = [o for o in peers if not math.isnan(o.long_horizon)]
        return max(peers, key=lambda o: o.long_horizon, default=None)
    peers = [o for o in peers if not math.isnan(o.headline.hr)]
    return max(peers, key=lambda o: o.headline.hr, default=None)


def difference_line(result: DatasetResult) -> str:
    """The best peer taken from recstream on each horizon, ± one paired standard error.

    Both are scored on the same events and pairs (`worker.tools.evaluate.paired`),
    so this says whether a ratio near 1 is a tie or a loss. "" without the events.
    """
    mine = next((o for o in result.outcomes if o.method == "recstream"), None)
    if mine is None:
        return ""
    parts = []
    peer = best_peer(result)
    if peer is not None and mine.hits.size:
        error = paired_error(mine.hits, peer.hits, result.headline_users)
        if math.isfinite(error):
            gap = mine.headline.hr - peer.headline.hr
            parts.append(f"next click {gap:+.4f} ± {error:.4f} ({peer.method})")
    peer = best_peer(result, long_horizon=True)
    if peer is not None and mine.pairs.hits.size:
        error = paired_error(mine.pairs.hits, peer.pairs.hits, mine.pairs.users)
        if math.isfinite(error):
            gap = mine.long_horizon - peer.long_horizon
            parts.append(f"long horizon {gap:+.4f} ± {error:.4f} ({peer.method})")
    if not parts:
        return ""
    return (
        f"recstream's HR@{K} minus the best peer's, ± one standard error of the difference "
        f"(event by event, clustered by user): {'; '.join(parts)}."
    )


def checkpoint_lines(result: DatasetResult) -> list[str]:
    """Long-horizon HR@K at each checkpoint, recstream against the best peer on that horizon.

    A horizon's figure pools its checkpoints; one where the stream turns (a drift
    every user follows at once) can decide it alone, and this shows which.
    """
    mine = next((o for o in result.outcomes if o.method == "recstream"), None)
    peer = best_peer(result, long_horizon=True)
    if mine is None or peer is None or not mine.pairs.at.size:
        return []
    points = np.unique(mine.pairs.at)
    header = " | ".join(f"{at / max(1, result.events):.0%}" for at in points)
    lines = [
        (
            f"Long-horizon HR@{K} checkpoint by checkpoint (lists as they stood at that point "
            "of the stream, against each user's later new clicks), recstream against the "
            "best peer on that horizon:"
        ),
        "",
        f"| at | {header} |",
        "| --- |" + " ---: |" * points.size,
    ]
    for outcome in (mine, peer):
        pairs = outcome.pairs
        cells = [
            f"{pairs.hits[pairs.at == at].mean():.3f}" if (pairs.at == at).any() else ""
            for at in points
        ]
        lines.append(f"| {outcome.method} | {' | '.join(cells)} |")
    counts = " | ".join(f"{int((mine.pairs.at == at).sum()):,}" for at in points)
    return [*lines, f"| user-checkpoint pairs | {counts} |"]


def dataset_section(result: DatasetResult, doc_dir: Path) -> list[str]:
    """A dataset's heading, shape, table, ratio and plot link."""
    lines = [
        f"### {result.name}",
        "",
        (
            f"{result.events:,} events, {result.users:,} users, {result.items:,} items; "
            f"{result.headline_events:,} events scored (a returning user, an item new to them)."
        ),
        "",
        *table(result),
        "",
        (
            f"recstream HR@{K} / best peer HR@{K}: **{ratio_to_best_peer(result):.2f}** "
            f"next click, **{ratio_to_best_peer(result, long_horizon=True):.2f}** long horizon"
        ),
    ]
    if difference := difference_line(result):
        lines += ["", difference]
    if ahead := ahead_line(result):
        lines += ["", ahead]
    if checkpoints := checkpoint_lines(result):
        lines += ["", *checkpoints]
    if result.ablations:
        lines += ["", *result.ablations]
    if result.plot is not None:
        rel = (
            result.plot.relative_to(doc_dir) if result.plot.is_relative_to(doc_dir) else result.plot
        )
        lines += ["", f"![HR@{K} over the stream, {result.name}]({rel.as_posix()})"]
    return [*lines, ""]


def plot_windows(result: DatasetResult, path: Path, drift_at: float | None = None) -> None:
    """HR@K per time window for every method, as a PNG."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for o in result.outcomes:
        n = len(o.windows)
        centres = [(w + 0.5) / n * 100 for w in range(n)]
        ax.plot(centres, [s.hr for s in o.windows], marker="o", markersize=3, label=o.method)
    if drift_at is not None:
        ax.axvline(drift_at * 100, color="grey", linestyle=":", label="tastes drift")
    first = first_window_ahead(result)
    if first is not None:
        n = len(result.outcomes[0].windows)
        ax.axvspan(
            first / n * 100, 100, color="green", alpha=0.08, label="recstream ahead from here"
        )
    ax.set(
        xlabel="position in the stream (% of events)",
        ylabel=f"HR@{K} in the window",
        title=f"Prequential HR@{K}, {result.name}",
    )
    ax.set_ylim(bottom=0)
    ax.grid(visible=True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


KEPT_MARKER = "<!-- written by hand below: recstream eval keeps it -->"


def keep_hand_written(page: str, existing: str | None) -> str:
    """`page`, followed by whatever the existing file holds from `KEPT_MARKER` on.

    The measurements are regenerated; the notes on what was tried and why stay.
    """
    if not existing or KEPT_MARKER not in existing:
        return page
    return page.rstrip() + "\n\n" + existing[existing.index(KEPT_MARKER) :]


def markdown(
    results: Sequence[DatasetResult],
    header: Sequence[str],
    doc_dir: Path,
    extra: Sequence[str] = (),
) -> str:
    """The whole page: `header` lines, a section per dataset, then `extra` lines."""
    lines = [*header, ""]
    for result in results:
        lines += dataset_section(result, doc_dir)
    return "\n".join([*lines, *extra]).rstrip() + "\n"
