"""Unit-test configuration: keep torch on one CPU thread for small, contention-proof tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _single_torch_thread() -> Iterator[None]:
    """Run torch CPU ops on one thread: the data is tiny and OpenMP stalls on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# One suite over devices (implicit's habit): every test that takes `device` runs on the CPU,
# and on CUDA where torch sees a GPU (marked `gpu`, so `make test-gpu` selects it).
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
        ],
    ),
]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """The torch device this run of the test uses."""
    return torch.device(request.param)
