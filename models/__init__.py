"""Embedding tables, id maps and the online learner: arrays in, arrays out, no I/O."""

from models.device import resolve_device
from models.errors import CheckpointError, ModelError, ModelFitError, RecstreamError
from models.history import SeenHistory
from models.idmap import IdMap
from models.learner import LearnerConfig, LearnStats, OnlineLearner
from models.table import EmbeddingTable

__all__ = [
    "CheckpointError",
    "EmbeddingTable",
    "IdMap",
    "LearnStats",
    "LearnerConfig",
    "ModelError",
    "ModelFitError",
    "OnlineLearner",
    "RecstreamError",
    "SeenHistory",
    "resolve_device",
]
