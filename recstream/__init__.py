"""What every recstream package shares and nothing else: the root of the error family.

The four packages (`models`, `index`, `stream`, `worker`) each keep their own
`errors.py`; every class there derives from `recstream.errors.RecstreamError`,
so `except RecstreamError` catches any failure recstream raises on purpose.
This package sits below all four and imports nothing, so each may import it
without depending on another (structlog keeps its `exceptions.py` apart for
the same reason). Anything added here must be needed by every package.
"""
