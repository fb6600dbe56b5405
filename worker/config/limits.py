"""Finite upper bounds the settings share: no setting may be infinite, none needs more."""

from __future__ import annotations

# One search fetches top_k + seen_history candidates, and FAISS GPU's k-selection stops at 2048.
MAX_SEARCH_K = 2048
DAY_S = 24 * 3600
TEN_YEARS_S = 10 * 365 * DAY_S
MAX_PORT = 65535
MAX_THREADS = 1024
