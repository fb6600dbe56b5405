"""What every evaluation run sets up first: its streams and its thread budget."""

from __future__ import annotations

import contextlib
from typing import cast

import torch

from worker.tools.evaluate.data import Stream, load_file, synthetic
from worker.tools.evaluate.options import EvalOptions


def load_streams(options: EvalOptions) -> list[Stream]:
    """The files (first `limit` events each), then the synthetic streams if asked."""
    streams = [load_file(path, options.limit) for path in options.paths]
    if options.synthetic_events:
        streams += [synthetic(kind, options.synthetic_events) for kind in options.synthetic]
    return streams


def limit_threads(threads: int) -> contextlib.AbstractContextManager[object]:
    """Run torch and numpy's BLAS on `threads`: on a busy box, spinning pools cost many times over.

    The figure: docs/benchmarks.md, "Figures behind the code".
    """
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the `eval` extra brings it; without it BLAS keeps its default
        return contextlib.nullcontext()
    return cast("contextlib.AbstractContextManager[object]", threadpool_limits(threads))
