"""What `recstream eval` runs and where it writes: one frozen options object, built by the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from worker.config.settings import Settings, with_values
from worker.tools.evaluate.knn import KnnConfig
from worker.tools.evaluate.names import METHOD_NAMES, SYNTHETIC
from worker.tools.evaluate.peers import AlsConfig, IsgdConfig
from worker.tools.evaluate.protocol import K


@dataclass(frozen=True)
class EvalOptions:
    """What to run and where to write it."""

    paths: list[Path]
    settings: Settings
    device: str = "cpu"
    synthetic_events: int = 0  # events of each synthetic stream (0: none)
    synthetic: tuple[str, ...] = SYNTHETIC  # which synthetic streams, when synthetic_events
    batch_size: int = 32
    limit: int | None = None
    methods: tuple[str, ...] = METHOD_NAMES
    recent_windows: tuple[int, ...] = (3_000, 10_000, 30_000)  # one peer per window
    isgd: IsgdConfig = field(default_factory=IsgdConfig)
    knn: KnnConfig = field(default_factory=KnnConfig)
    als: AlsConfig = field(default_factory=AlsConfig)
    windows: int = 20
    threads: int = 1
    kafka_check: int = 0
    ablations: int = 0  # events of each stream's prefix the ablations replay (0: none)
    workers: int = 1  # through Kafka: also this many scale-out workers, beside one
    out: Path | None = None
    img_dir: Path | None = None  # None: img/ beside `out`

    @property
    def plots(self) -> Path:
        """Where the plots go: `img_dir`, or an img folder beside the page."""
        if self.img_dir is not None:
            return self.img_dir
        return (self.out.parent if self.out is not None else Path()) / "img"

    command: str = ""
    quiet: bool = False  # no progress bars (they are off anyway when stderr is not a terminal)


def engine_settings(options: EvalOptions) -> Settings:
    """The worker's settings with the eval's list length and device."""
    return with_values(options.settings, top_k=K, device=options.device)
