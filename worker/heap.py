"""Keep freed memory in the process, so a batch's large temporaries reuse pages.

glibc serves an allocation above its mmap threshold (128 KiB at first) with a
fresh mapping, and returns the heap's top to the kernel once 128 KiB are free
there. A rank step allocates and frees tens of megabytes of temporaries per
batch (candidate features, score matrices), so each batch faulted in thousands
of zeroed pages: 7,500 per 512-user rank over 10^4 items, about a third of its
time on 2 cores (docs/benchmarks.md, "2026-12-06, night"). With higher
thresholds those pages stay mapped between batches: the peak footprint is the
same, it is just not given back and taken again.

The operator's own glibc variables win: if any is set, nothing is changed.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt(3) parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

# The values: the largest mmap threshold glibc accepts on 64-bit (32 MiB: a 1,024-user rank
# chunk's features fit under it), and room to keep a few batches' worth of freed memory.
TUNING = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 512 << 20, M_TOP_PAD: 64 << 20}
OPERATOR_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
STATE = "untouched"  # what `keep_freed_memory` did in this process (the CLI calls it first)


def keep_freed_memory() -> str:
    """Raise glibc's mmap and trim thresholds; returns what was done, for the start-up log.

    "tuned", or why not: "operator" (a `MALLOC_*` variable is set), "unsupported"
    (not Linux glibc; musl's `mallopt` refuses everything).
    """
    if any(name in os.environ for name in OPERATOR_VARIABLES):
        return "operator"
    if not sys.platform.startswith("linux"):
        return "unsupported"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "unsupported"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    accepted = [mallopt(param, value) == 1 for param, value in TUNING.items()]
    return "tuned" if all(accepted) else "unsupported"
