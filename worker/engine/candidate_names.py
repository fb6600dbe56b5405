"""The names of the candidate sources and feature groups, light enough for settings to import."""

from __future__ import annotations

SOURCES = ("vector", "covisit", "successors", "trending", "cold")
# Feature groups of the ranker, each an ablation unit (RECSTREAM_CANDIDATES_RANKER_DROP).
GROUPS = ("vector", "neighbours", "popularity", "item_time", "user", "source_ranks")
