"""Fixtures of the worker's unit tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every `RECSTREAM_*` variable the outer environment may set."""
    for name in list(os.environ):
        if name.upper().startswith("RECSTREAM_"):
            monkeypatch.delenv(name)
