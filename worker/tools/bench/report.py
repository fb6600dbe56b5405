"""Write the benchmark results as markdown, plus a PNG of throughput and latency against load."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import faiss
import torch

from index.knn import backend_for
from worker.tools.bench.floor import floor_broken
from worker.tools.bench.stages import Row


def machine(device: torch.device) -> dict[str, str]:
    """CPU model, cores, GPU and library builds, read off this machine."""
    cpu = platform.processor() or "unknown"
    with Path("/proc/cpuinfo").open() as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none used"
    return {
        "cpu": f"{cpu}, {os.cpu_count()} logical cores",
        "gpu": gpu,
        "torch": torch.__version__,
        "faiss": f"{faiss.__version__} (search backend on {device}: {backend_for(device)})",
        "python": platform.python_version(),
    }


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"  # noqa: PLR2004


def markdown(
    rows: list[Row], latency: list[dict[str, float]], info: dict[str, Any], plot: str | None
) -> str:
    """The results page."""
    lines = [
        f"## {info['title']}",
        "",
        f"- date: {info['date']}",
        f"- command: `{info['command']}`",
        f"- machine: {info['machine']['cpu']}; GPU: {info['machine']['gpu']}",
        (
            f"- torch {info['machine']['torch']}, faiss {info['machine']['faiss']}, "
            f"Python {info['machine']['python']}"
        ),
        (
            f"- repeats: median of {info['repeats']} per figure; baselines, peers and rooflines "
            "measured in the same run"
        ),
        "",
        "| stage | case | rate | unit | against | its rate | ratio | note |",
        "| --- | --- | ---: | --- | --- | ---: | ---: | --- |",
    ]
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.baseline_rate else ""
        base = _fmt(row.baseline_rate) if row.baseline_rate else ""
        lines.append(
            f"| {row.stage} | {row.case} | {_fmt(row.rate)} | {row.unit} | {row.baseline} "
            f"| {base} | {ratio} | {row.note} |"
        )
    if latency:
        lines += [
            "",
            (
                "Click→Redis latency at fixed offered loads (producer in a separate process; "
                "offered 0 = flat out):"
            ),
            "",
            (
                "| offered events/s | processed events/s | p50 ms | p99 ms "
                "| pass-through p50 / p99 ms | p50 ratio | p99 ratio |"
            ),
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        broken = floor_broken(latency, str(info.get("device", "")))
        for p in latency:
            floor, p50_ratio, p99_ratio = "", "", ""
            if p.get("pass_p99_ms"):
                floor = f"{p['pass_p50_ms']:.1f} / {p['pass_p99_ms']:.1f}"
                if broken:
                    p50_ratio = p99_ratio = "floor broken"
                else:
                    p50_ratio = f"{p['p50_ms'] / max(p['pass_p50_ms'], 1e-9):.1f}x"
                    p99_ratio = f"{p['p99_ms'] / max(p['pass_p99_ms'], 1e-9):.1f}x"
            lines.append(
                f"| {_fmt(p['offered'])} | {_fmt(p['events_per_s'])} | {p['p50_ms']:.1f} "
                f"| {p['p99_ms']:.1f} | {floor} | {p50_ratio} | {p99_ratio} |"
            )
        lines += [
            "",
            (
                "Latency: Redis acknowledgement of a list folding the click in, minus its produce "
                "time; the pass-through consumer (takes what is there, waits at most 5 ms, one "
                "pipelined SET per user, synchronous commit after the acknowledgement, no model) "
                "is measured the same way on the same load in the same run. The load: users "
                "uniform over 20,000, items Zipf 0.9 over 10,000. Offered 0 = flat out "
                "(saturation)."
            ),
        ]
        if broken:
            lines += ["", f"**Self-check: {broken}.**"]
    stages = [
        name
        for name in ("decode", "learn", "rank", "encode", "train", "publish", "wait", "commit")
        if any(f"stage_{name}_s" in p for p in latency)
    ]
    if stages:
        lines += [
            "",
            "Where the worker's loop time went at each load (after warm-up):",
            "",
            "| offered events/s | " + " | ".join(stages) + " |",
            "| ---: | " + " | ".join("---:" for _ in stages) + " |",
        ]
        for p in latency:
            total = sum(p.get(f"stage_{s}_s", 0.0) for s in stages) or 1.0
            shares = " | ".join(f"{p.get(f'stage_{s}_s', 0.0) / total:.0%}" for s in stages)
            lines.append(f"| {_fmt(p['offered'])} | {shares} |")
    if plot:
        lines += ["", f"![throughput and latency against load]({plot})"]
    return "\n".join(lines) + "\n"


def plot_latency(latency: list[dict[str, float]], path: Path, title: str) -> None:
    """Throughput and p50/p99 latency against offered load, as a PNG."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    points = [p for p in latency if p["offered"] > 0]
    flat = [p for p in latency if p["offered"] == 0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    offered = [p["offered"] for p in points]
    left.plot(offered, [p["events_per_s"] for p in points], "o-", label="processed")
    left.plot(offered, offered, "--", color="grey", label="offered")
    for p in flat:
        left.axhline(p["events_per_s"], color="red", linestyle=":", label="flat-out drain")
    left.set(xlabel="offered events/s", ylabel="processed events/s", xscale="log", yscale="log")
    left.legend()
    right.plot(offered, [p["p50_ms"] for p in points], "o-", label="p50")
    right.plot(offered, [p["p99_ms"] for p in points], "s-", label="p99")
    right.set(xlabel="offered events/s", ylabel="click→Redis ms", xscale="log", yscale="log")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
