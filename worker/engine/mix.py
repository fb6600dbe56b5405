"""Two distributions over each user's candidates, mixed: `log((1 - s) p + s q)`.

Lists are the top-K of one score, and what is added to the ranker's (the user's
taste, popularity between sessions) is added as a mixture component rather than
as slots, so the list stays one ranking.
"""

from __future__ import annotations

import torch


def mix(scores: torch.Tensor, other: torch.Tensor, share: float | torch.Tensor) -> torch.Tensor:
    """`[users, n]` log-probabilities `scores` mixed with `other` at `share`.

    Both are log-probabilities over each user's candidates (`-inf`: none). A row
    where `other` holds no mass keeps `scores` as they are.
    """
    share = torch.as_tensor(share, dtype=scores.dtype, device=scores.device)
    mixed = torch.logaddexp(scores + torch.log1p(-share), other + torch.log(share))
    return torch.where(torch.isfinite(other).any(1, keepdim=True), mixed, scores)
