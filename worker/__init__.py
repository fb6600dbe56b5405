"""Wiring: settings, the batch loop, metrics and health, the CLI, the demo and replay."""

from worker.loop import BatchReport, LoopConfig, Worker
from worker.settings import KafkaSettings, RedisSettings, Settings, SettingsError, load_settings

__all__ = [
    "BatchReport",
    "KafkaSettings",
    "LoopConfig",
    "RedisSettings",
    "Settings",
    "SettingsError",
    "Worker",
    "load_settings",
]
