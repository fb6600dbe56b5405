"""The root of recstream's errors: one class that every package's errors derive from."""

from __future__ import annotations


class RecstreamError(Exception):
    """Base of every error recstream raises on purpose."""
