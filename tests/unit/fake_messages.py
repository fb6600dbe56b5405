"""A stand-in for `confluent_kafka.Message`, for the decoder's unit tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeMessage:
    """The slice of `confluent_kafka.Message` that `decode_messages` reads."""

    _value: bytes | None
    _offset: int
    _partition: int = 0
    _topic: str = "clicks"
    _ts_ms: int = 1_700_000_000_000
    _key: bytes | None = b"k"

    def topic(self) -> str:
        """Topic name."""
        return self._topic

    def partition(self) -> int:
        """Partition number."""
        return self._partition

    def offset(self) -> int:
        """Offset within the partition."""
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        """`(TIMESTAMP_CREATE_TIME, ms)`, or `(0, -1)` when not available."""
        return (1, self._ts_ms) if self._ts_ms > 0 else (0, -1)

    def value(self) -> bytes | None:
        """Message payload."""
        return self._value

    def key(self) -> bytes | None:
        """Message key."""
        return self._key

    def error(self) -> None:
        """Messages handed to `decode_messages` are error-free."""
