"""Progress bars for the long commands (replay, eval, bench): on a terminal only.

Off when stderr is not a terminal (logs, CI, pipes stay clean) or with `--quiet`.
"""

from __future__ import annotations

import sys
from typing import Any


def bar(total: int | None, desc: str, *, quiet: bool = False, unit: str = "it") -> Any:  # noqa: ANN401  (tqdm is untyped)
    """A tqdm bar on stderr, or a disabled one that costs nothing to update."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        file=sys.stderr,
        disable=quiet or not sys.stderr.isatty(),
        leave=False,
        dynamic_ncols=True,
    )
