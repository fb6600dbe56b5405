"""`recstream inspect USER`: what one user is shown, and what the model knows of them.

The list comes from Redis (what the app reads); the clicks and seen history
come from a running worker's debug endpoint or from the newest checkpoint.
Together they answer the operator's question "why does this user see that?".
"""

from __future__ import annotations

import csv
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import torch

from recstream.errors import RecstreamError
from stream.reader import Recommendations, connect, get_recommendations
from worker.config.edges import RedisSettings
from worker.config.limits import DAY_S
from worker.observability.debug import RECENT, describe_user
from worker.observability.metrics import DEBUG_USERS
from worker.storage.checkpoint_files import load_latest


class InspectError(RecstreamError):
    """A source named on the command line cannot be read (one line for the operator)."""


@dataclass(frozen=True)
class Sources:
    """Where to look: Redis always; a worker URL or a checkpoint directory for the history."""

    redis: RedisSettings
    worker_url: str | None = None
    checkpoint_dir: Path | None = None
    recent: int = RECENT


def load_titles(path: Path) -> dict[str, str]:
    """`id,title` rows (a header row is fine; titles may be quoted and hold commas)."""
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        return {row[0].strip(): row[1].strip() for row in csv.reader(handle) if len(row) >= 2}  # noqa: PLR2004


def read_list(redis: RedisSettings, user: str) -> Recommendations | None:
    """The user's list as the app gets it (the cold-start list when they have none)."""
    password = redis.password.get_secret_value() if redis.password else None
    client = connect(redis.url.get_secret_value(), password, redis.timeout_s)
    try:
        return get_recommendations(
            client, user, prefix=redis.prefix, cold_start_key=redis.cold_start_key
        )
    finally:
        client.close()


def history_from_worker(url: str, user: str) -> dict[str, Any] | None:
    """The live state from `url`'s `/debug/users/<id>` (RECSTREAM_DEBUG_ENDPOINT=true there)."""
    target = f"{url.rstrip('/')}{DEBUG_USERS}{quote(user, safe='')}"
    if not target.startswith(("http://", "https://")):
        raise InspectError(f"--worker must be an http(s) URL, got {url!r}")
    try:
        with urllib.request.urlopen(target, timeout=10) as response:  # noqa: S310  (checked above)
            state: dict[str, Any] = json.loads(response.read())
            return state
    except urllib.error.HTTPError as exc:
        if exc.code == 404 and exc.headers.get_content_type() == "application/json":  # noqa: PLR2004
            return None  # the endpoint answered: no such user
        raise InspectError(
            f"{target}: HTTP {exc.code} (is RECSTREAM_DEBUG_ENDPOINT=true on that worker?)"
        ) from exc
    except OSError as exc:
        raise InspectError(f"{target}: {exc}") from exc


def history_from_checkpoint(directory: Path, user: str, recent: int) -> dict[str, Any] | None:
    """The state as of the newest checkpoint that verifies in `directory`."""
    restored = load_latest(directory, torch.device("cpu"))
    if restored is None:
        raise InspectError(f"no valid checkpoint in {directory}")
    state = describe_user(restored.learner, user, recent)
    if state is not None:
        state["checkpoint"] = restored.path.name
    return state


def inspect(user: str, sources: Sources, titles: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything `recstream inspect` shows, as one JSON-able dict."""
    now = time.time()
    rec = read_list(sources.redis, user)
    report: dict[str, Any] = {"user": user, "now": now, "list": None, "history": None}
    if rec is not None:
        report["list"] = {
            "source": "cold_start" if rec.cold_start else "user",
            "key": sources.redis.cold_start_key if rec.cold_start else sources.redis.prefix + user,
            "items": rec.items,
            "scores": rec.scores,
            "published_ts": rec.published_ts,
            "age_s": round(rec.age_s(now), 3),
            "event_ts": rec.event_ts,
            "version": rec.version,
        }
    if sources.worker_url:
        report["history_source"] = sources.worker_url
        report["history"] = history_from_worker(sources.worker_url, user)
    elif sources.checkpoint_dir is not None:
        report["history_source"] = str(sources.checkpoint_dir)
        report["history"] = history_from_checkpoint(sources.checkpoint_dir, user, sources.recent)
    if titles is not None:
        named = set(report["list"]["items"] if report["list"] else [])
        if report["history"]:
            named |= set(report["history"]["recent"]) | set(report["history"].get("seen", []))
        report["titles"] = {i: titles[i] for i in sorted(named) if i in titles}
    return report


def _ago(now: float, ts: float) -> str:
    """`6.4 s ago` for fresh times; a date for old ones (a replayed log's event times)."""
    if now - ts < DAY_S:
        return f"{now - ts:.1f} s ago"
    return "at " + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def format_report(report: dict[str, Any]) -> str:
    """The human view: the list as a table, then the clicks behind it."""
    titles: dict[str, str] = report.get("titles", {})
    lines = [f"user {report['user']}"]
    rec = report["list"]
    if rec is None:
        lines.append("  list      none (no list of their own and no cold-start list)")
    else:
        whose = "their own" if rec["source"] == "user" else "none of their own: cold-start list"
        lines += [
            f"  list      {rec['key']} ({whose}), {len(rec['items'])} items",
            (
                f"  published {_ago(report['now'], rec['published_ts'])},"
                f" index version {rec['version']},"
                f" newest click in it {_ago(report['now'], rec['event_ts'])}"
            ),
            f"  {'#':>3}  {'item':<12} {'score':>8}  title",
        ]
        for rank, (item, score) in enumerate(zip(rec["items"], rec["scores"], strict=True), 1):
            lines.append(f"  {rank:>3}  {item:<12} {score:>8.3f}  {titles.get(item, '')}".rstrip())
    if "history_source" not in report:
        lines.append("  history   not asked (give --worker URL or RECSTREAM_CHECKPOINT_DIR)")
        return "\n".join(lines)
    state = report["history"]
    where = state.get("checkpoint", report["history_source"]) if state else ""
    if state is None:
        lines.append(f"  history   unknown user in {report['history_source']}")
        return "\n".join(lines)
    last = state["last_event_ts"]
    ago = f", last event {_ago(report['now'], last)}" if last else ""
    lines += [
        f"  history   from {where}: {state['clicks']} clicks{ago}",
        (
            f"  seen      {len(state['seen'])} of {state['seen_capacity']} slots"
            " (excluded from the list)"
        ),
        "  recent clicks, newest first:",
    ]
    lines += [f"       {item:<12} {titles.get(item, '')}".rstrip() for item in state["recent"]]
    return "\n".join(lines)
