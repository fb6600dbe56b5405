"""Errors of the item index."""

from __future__ import annotations

from recstream.errors import RecstreamError


class ItemIndexError(RecstreamError):
    """The index cannot answer: not built yet, or asked for a bad search."""
