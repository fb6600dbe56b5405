"""Prometheus metrics, and the HTTP endpoint that serves them with /healthz and /readyz.

Each metric is defined here once; who counts into which: the table in
`worker.observability.accounting`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    import torch

# Exported only when the worker runs on CUDA (the dashboard's GPU panel is empty otherwise).
GPU_METRICS = ("recstream_gpu_memory_allocated_bytes", "recstream_gpu_memory_reserved_bytes")
DEBUG_USERS = "/debug/users/"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class WorkerMetrics:
    """The worker's counters, in a registry of its own (several workers per test process)."""

    def __init__(self) -> None:
        """Create every metric at zero."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("recstream_events", "Valid events processed", registry=r)
        self.dead_lettered = Counter(
            "recstream_dead_lettered", "Messages sent to the DLQ", ["reason"], registry=r
        )
        self.dead_letter_truncated = Counter(
            "recstream_dead_letter_truncated",
            "Rejects too large for the DLQ, sent as a bounded prefix",
            registry=r,
        )
        self.dead_letter_undeliverable = Counter(
            "recstream_dead_letter_undeliverable",
            "Rejects the DLQ refused for good (no retry cures it): logged with the offset, skipped",
            ["error"],
            registry=r,
        )
        self.batches = Counter("recstream_batches", "Micro-batches completed", registry=r)
        self.users_published = Counter(
            "recstream_users_published", "Lists written to Redis", registry=r
        )
        self.retries = Counter(
            "recstream_retries", "Transient failures retried", ["stage"], registry=r
        )
        self.batch_seconds = Histogram(
            "recstream_batch_seconds",
            "Batch wall time",
            ["stage"],
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.click_to_redis_seconds = Histogram(
            "recstream_click_to_redis_seconds",
            "From produce time to Redis acknowledging the list",
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.loss = Gauge("recstream_learner_loss", "Last batch's training loss", registry=r)
        self.index_version = Gauge("recstream_index_version", "Index version", registry=r)
        self.candidate_recall = Gauge(
            "recstream_candidate_recall",
            "Share of the last batch's sampled clicks whose item was among its user's candidates",
            registry=r,
        )
        self.taste_share = Gauge(
            "recstream_taste_share",
            "The user's taste's share of every list score, as learned from later clicks",
            registry=r,
        )
        self.idle_popular_share = Gauge(
            "recstream_idle_popular_share",
            "Popularity's share of the list score of a user between sessions (0: off)",
            registry=r,
        )
        self.resting_lag = Gauge(
            "recstream_resting_lag_seconds",
            "How long users fallen idle have waited past their pause for a list between sessions "
            "(they wait under a backlog; 0: none waits)",
            registry=r,
        )
        self.index_built_at = Gauge(
            "recstream_index_built_timestamp_seconds",
            "When the index was made current",
            registry=r,
        )
        self.users = Gauge("recstream_users", "Users with a row", registry=r)
        # scale-out (RECSTREAM_SCALE_OUT): hand-overs, re-reads and the item feed's staleness
        self.users_handed_over = Counter(
            "recstream_users_handed_over",
            "Users whose state went out on revoke or came in on assign (the state topic)",
            ["direction"],
            registry=r,
        )
        self.handover_seconds = Histogram(
            "recstream_partition_handover_seconds",
            "Time to hand partitions over (out: flush on revoke) or restore one (in: on assign)",
            ["direction"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.rereads = Counter(
            "recstream_rereads",
            "Events re-read after a hand-over: between the state's marker and the group's commit",
            registry=r,
        )
        self.state_tombstones = Counter(
            "recstream_state_tombstones",
            "Evicted users (caps, TTL) deleted from the state topic, so no hand-over restores them",
            registry=r,
        )
        self.item_sync_staleness = Histogram(
            "recstream_item_sync_staleness_seconds",
            "From another worker's item change to its rows being searchable here",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.items_hidden = Gauge(
            "recstream_items_hidden",
            "Items an operator removed or banned (the control topic)",
            registry=r,
        )
        self.catalogue_ops = Counter(
            "recstream_catalogue_ops",
            "Control messages that changed the catalogue, by op",
            ["op"],
            registry=r,
        )
        # the sweep of stored lists after a removal (worker/catalogue/sweep.py)
        self.sweep_seconds = Histogram(
            "recstream_catalogue_sweep_seconds",
            "Time to sweep hidden items out of every stored list (SCAN, match, rewrite)",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.sweep_rewritten = Counter(
            "recstream_catalogue_sweep_lists_rewritten",
            "Stored lists rewritten without a hidden item",
            registry=r,
        )
        self.sweeps_overdue = Counter(
            "recstream_catalogue_sweeps_overdue",
            "Sweeps that ended later than RECSTREAM_CONTROL_SWEEP_S after their removal",
            registry=r,
        )
        self.items = Gauge("recstream_items", "Items with a row", registry=r)
        self.evictions = Counter(
            "recstream_rows_evicted",
            "Rows freed: kind user or item, cause lru (a cap) or ttl",
            ["kind", "cause"],
            registry=r,
        )
        self.events_unlearned = Counter(
            "recstream_events_unlearned",
            "Valid events not learned for lack of a user or item row (still committed)",
            registry=r,
        )
        self.lists_withheld = Counter(
            "recstream_lists_withheld",
            "Batches whose lists were not published (kind users or cold_start), keeping the"
            " previous ones: reason non_finite_scores, a broken model",
            ["kind", "reason"],
            registry=r,
        )
        self.lag = Gauge(
            "recstream_consumer_lag",
            "Messages behind the end of the assigned partitions",
            registry=r,
        )
        self.last_checkpoint = Gauge(
            "recstream_last_checkpoint_timestamp_seconds",
            "Time of the last checkpoint written",
            registry=r,
        )
        self.checkpoint_failures = Counter(
            "recstream_checkpoint_failures",
            "Checkpoint writes that failed (tried again at the next interval)",
            registry=r,
        )
        self.last_commit = Gauge(
            "recstream_last_commit_timestamp_seconds",
            "Time of the last offset commit",
            registry=r,
        )
        self.scale_out_off_with_peers = Gauge(
            "recstream_scale_out_off_with_peers",
            "1 while RECSTREAM_SCALE_OUT is off and the group has other members (or this"
            " worker holds part of the topic): the workers learn apart",
            registry=r,
        )
        # Lines /readyz adds to its body (a warning that does not make the worker unready).
        self.readiness_notes: dict[str, str] = {}

    def watch_device(self, device: torch.device) -> None:
        """On CUDA, export the caching allocator's memory, read at each scrape (not per batch)."""
        if device.type != "cuda":
            return
        import torch

        allocated, reserved = (
            Gauge(name, help_text, registry=self.registry)
            for name, help_text in zip(
                GPU_METRICS,
                ("GPU memory held by tensors", "GPU memory reserved by torch's caching allocator"),
                strict=True,
            )
        )
        allocated.set_function(lambda: float(torch.cuda.memory_allocated(device)))
        reserved.set_function(lambda: float(torch.cuda.memory_reserved(device)))


class HealthServer:
    """Serves `/metrics`, `/healthz` (the loop is alive) and `/readyz` (it can do its job).

    With a `debug` reader given to `start` (`RECSTREAM_DEBUG_ENDPOINT`, off by default) it
    also answers `GET /debug/users/<id>` with that user's model state as JSON, read-only.
    """

    def __init__(
        self,
        port: int,
        metrics: WorkerMetrics,
        host: str = "0.0.0.0",  # noqa: S104  (scraped from outside the container)
    ) -> None:
        """Bind now (port 0 picks a free one; a port in use raises `OSError` here, at start).

        Serving starts with `start`, once there is a worker to ask.
        """
        registry = metrics.registry
        notes = metrics.readiness_notes
        checks: dict[str, Callable[[], bool]] = {}
        self._checks = checks
        readers: dict[str, Callable[[str], dict[str, Any] | None]] = {}
        self._readers = readers

        class Handler(BaseHTTPRequestHandler):
            """Answers GET /metrics, /healthz, /readyz and the opt-in debug path; nothing else."""

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    body, status, ctype = generate_latest(registry), 200, CONTENT_TYPE_LATEST
                elif self.path in ("/healthz", "/readyz"):
                    check = checks.get(self.path)
                    ok = check is not None and check()
                    text = "ok\n" if ok else "not ok\n"
                    if self.path == "/readyz":
                        text += "".join(f"{note}\n" for note in list(notes.values()))
                    body, status, ctype = text.encode(), (200 if ok else 503), "text/plain"
                elif self.path.startswith(DEBUG_USERS) and "user" in readers:
                    state = readers["user"](unquote(self.path.removeprefix(DEBUG_USERS)))
                    body = json.dumps(state or {"error": "no such user"}).encode()
                    status, ctype = (200 if state else 404), "application/json"
                else:
                    body, status, ctype = b"not found\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:  # scrapes are not log events
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="recstream-http", daemon=True
        )

    def start(
        self,
        live: Callable[[], bool],
        ready: Callable[[], bool],
        debug: Callable[[str], dict[str, Any] | None] | None = None,
    ) -> None:
        """Start serving: `/healthz` answers `live()`, `/readyz` answers `ready()`.

        `debug(user)`, when given, answers `/debug/users/<user>` (None: 404).
        """
        self._checks.update({"/healthz": live, "/readyz": ready})
        if debug is not None:
            self._readers["user"] = debug
        self._thread.start()

    def close(self) -> None:
        """Stop serving (if started) and free the port."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


class Heartbeat:
    """The loop's pulse: live while it has turned within `max_silence_s`."""

    def __init__(self, max_silence_s: float) -> None:
        """Start beating now."""
        self.max_silence_s = max_silence_s
        self._last = time.monotonic()

    def beat(self) -> None:
        """Record a turn of the loop."""
        self._last = time.monotonic()

    def alive(self) -> bool:
        """Whether the loop turned recently."""
        return time.monotonic() - self._last < self.max_silence_s
