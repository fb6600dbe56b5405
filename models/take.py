"""Rows of a table picked by an index tensor, copied a row at a time.

`table[index]` (advanced indexing) copies element by element on a CPU: taking
51,200 rows of the 65-float item matrix cost 3.2 ms that way and 1.0 ms through
`index_select`, which copies whole rows (2026-12-07, one thread). The rank takes
item vectors, neighbour lists and item features per candidate this way.
"""

from __future__ import annotations

import torch


def take_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`table[index]` for an integer `index` of any shape (every entry a valid row)."""
    flat = table.index_select(0, index.reshape(-1))
    return flat.view(*index.shape, *table.shape[1:])
