"""Rankings computed along different paths: floats within a tolerance, rows where unambiguous.

BLAS blocks a GEMM differently by shape and by CPU (AMD and Intel differ in the last bits), so
two paths to the same scores agree only within a tolerance, and two items whose scores are
that close may swap places. Rows are compared exactly only where their score stands clear of
its neighbours in the list.
"""

from __future__ import annotations

import torch

ATOL = 1e-5
RTOL = 1e-5


def assert_same_ranking(
    rows: torch.Tensor,
    scores: torch.Tensor,
    want_rows: torch.Tensor,
    want_scores: torch.Tensor,
    atol: float = ATOL,
) -> None:
    """Scores agree within `atol`; rows agree wherever their score is not a near tie."""
    finite = torch.isfinite(want_scores)
    assert torch.equal(torch.isfinite(scores), finite)
    torch.testing.assert_close(
        torch.where(finite, scores, 0.0),
        torch.where(finite, want_scores, 0.0),
        atol=atol,
        rtol=RTOL,
    )
    gap = 2 * atol + RTOL * want_scores.abs()
    clear = finite.clone()
    step = (want_scores[:, 1:] - want_scores[:, :-1]).abs()
    step = torch.where(torch.isfinite(step), step, torch.inf)
    clear[:, 1:] &= step > gap[:, 1:]
    clear[:, :-1] &= step > gap[:, :-1]
    assert torch.equal(rows[clear], want_rows[clear])
