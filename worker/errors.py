"""The worker's own errors, of the family rooted in `recstream.errors`."""

from __future__ import annotations

from recstream.errors import RecstreamError


class StartupError(RecstreamError):
    """A dependency or resource is unusable at start: the CLI logs `startup_failed`, exits 2.

    `fields` go into that log line as they are (the variable to fix, the servers tried).
    """

    def __init__(self, message: str, **fields: object) -> None:
        """Keep the message and the structured fields apart."""
        super().__init__(message)
        self.fields = fields


class SettingsError(RecstreamError):
    """Configuration that cannot work; the message names each bad variable."""


class StopRequestedError(RecstreamError):
    """A retry was abandoned because the worker is stopping; nothing was committed."""
