"""The ranker's inference path against its training path."""

from __future__ import annotations

import torch

from models.ranker import OnlineRanker, RankerConfig


def test_scores_fold_the_standardisation_into_the_weights() -> None:
    """`score` (weights folded) ranks as `_forward` (features standardised) does."""
    ranker = OnlineRanker(6, RankerConfig(hidden=4), torch.device("cpu"), start=0)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in ranker.params:
            param.copy_(torch.randn(param.shape, generator=gen))
    ranker.mean = torch.randn(6, generator=gen)
    ranker.var = torch.rand(6, generator=gen) + 0.1
    features = torch.randn(5, 7, 6, generator=gen) * 3
    with torch.no_grad():
        expected = ranker._forward(features)
    torch.testing.assert_close(ranker.score(features), expected, rtol=1e-4, atol=1e-4)
