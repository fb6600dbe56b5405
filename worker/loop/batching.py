"""How many events the next poll asks for: latency-first, larger while a backlog waits.

A batch is whatever arrived while the previous one was processed, up to a size
(DESIGN.md, "Latency"). At light load a poll returns fewer events than it asked
for, and the size stays at `RECSTREAM_BATCH_SIZE`, so latency is what it was.
When a poll comes back full, more is waiting: the next asks for twice as many,
up to `RECSTREAM_BATCH_MAX` (a device-sized cap: one GPU step costs about the
same at 1k and 16k events, so a backlog is drained in fewer, larger steps).
When a poll comes back short again the consumer has caught up, and the size
halves back towards the base, one step per batch.
"""

from __future__ import annotations

# The largest batch each device steps through in a short, bounded time (the figures:
# docs/benchmarks.md, "Figures behind the code").
GPU_BATCH_MAX = 65_536
CPU_BATCH_MAX = 16_384


def default_batch_max(device_type: str) -> int:
    """The cap when RECSTREAM_BATCH_MAX is unset, for a torch device type."""
    return GPU_BATCH_MAX if device_type == "cuda" else CPU_BATCH_MAX


class BatchSizer:
    """The size of the next poll, from how full the last ones came back."""

    def __init__(self, base: int, cap: int | None = None) -> None:
        """Start at `base`; grow up to `cap` (at least `base`; None: never grow)."""
        if base < 1:
            raise ValueError(f"base must be >= 1, got {base}")
        self.base = base
        self.cap = max(base, cap or base)
        self.size = base
        self.backlog = False  # the last poll came back full, or grown: more is waiting

    def observe(self, got: int) -> int:
        """Take what the last poll returned; return the size of the next one.

        Full (`got >= size`): a backlog waits, double towards the cap. Short: caught
        up, halve towards the base. Anything below the base leaves the base alone.
        `backlog` says whether this poll came back full or grown: one that alternates
        between the base and twice it, at a rate just past what the worker takes, is
        behind all along.
        """
        # a grown size that came back short is still draining what the full ones left
        self.backlog = got >= self.size or self.size > self.base
        if got >= self.size:
            self.size = min(self.cap, self.size * 2)
        elif self.size > self.base:
            self.size = max(self.base, self.size // 2)
        return self.size
