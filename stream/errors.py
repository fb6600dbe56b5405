"""The three kinds of trouble at the edges, so the worker loop has one place to decide.

A `BadEvent` is dead-lettered and counted; a `TransientError` is retried with
capped backoff; a `FatalError` ends the process non-zero for the orchestrator
to restart.
"""

from __future__ import annotations

from recstream.errors import RecstreamError


class StreamError(RecstreamError):
    """Base of errors raised at the Kafka and Redis edges."""


class BadEvent(StreamError):  # noqa: N818  (an event, not an exception about one)
    """One input message breaks the event contract; `reason` says how."""

    def __init__(self, reason: str) -> None:
        """Keep the short machine-readable reason for the DLQ header."""
        super().__init__(reason)
        self.reason = reason


class TransientError(StreamError):
    """A dependency is briefly unavailable; the same call may succeed later."""


class FatalError(StreamError):
    """Misconfiguration or a broken dependency that retrying will not fix."""
