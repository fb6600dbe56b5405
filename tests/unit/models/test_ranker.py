"""The ranker's inference path against its training path."""

from __future__ import annotations

import pytest
import torch

from models.ranker import OnlineRanker, RankerConfig


@pytest.mark.parametrize("feature_major", [False, True], ids=["candidate-major", "planes"])
def test_scores_fold_the_standardisation_into_the_weights(
    device: torch.device, feature_major: bool
) -> None:
    """`score` (weights folded) ranks as `_forward` (features standardised) does.

    Feature-major: held as `TwoStage.candidates` holds them, one plane per feature.
    """
    ranker = OnlineRanker(6, RankerConfig(hidden=4), device, start=0)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in ranker.params:
            param.copy_(torch.randn(param.shape, generator=gen).to(device))
    ranker.mean = torch.randn(6, generator=gen).to(device)
    ranker.var = (torch.rand(6, generator=gen) + 0.1).to(device)
    features = (torch.randn(5, 7, 6, generator=gen) * 3).to(device)
    if feature_major:
        features = features.permute(2, 0, 1).contiguous().permute(1, 2, 0)
    with torch.no_grad():
        expected = ranker._forward(features)
    scores = ranker.score(features)
    assert scores.device == features.device
    torch.testing.assert_close(scores.cpu(), expected.cpu(), rtol=1e-4, atol=1e-4)


def test_the_hand_written_adam_steps_as_torch_adam_does(device: torch.device) -> None:
    """The ranker's own Adam (no step count read back) follows `torch.optim.Adam`."""
    ranker = OnlineRanker(5, RankerConfig(hidden=3, learning_rate=0.05), device)
    reference = [p.detach().clone().requires_grad_() for p in ranker.params]
    adam = torch.optim.Adam(reference, lr=0.05)
    gen = torch.Generator().manual_seed(7)
    for _ in range(6):
        grads = tuple(torch.randn(p.shape, generator=gen).to(device) for p in ranker.params)
        ranker._adam_step(grads)
        for param, grad in zip(reference, grads, strict=True):
            param.grad = grad.clone()
        adam.step()
    for mine, theirs in zip(ranker.params, reference, strict=True):
        torch.testing.assert_close(mine.detach().cpu(), theirs.detach().cpu(), rtol=1e-5, atol=1e-6)
