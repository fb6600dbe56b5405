"""One upload and one download per batch: a batch's arrays packed into one copy each way.

On a GPU every host-device copy is a call, and a copy from pageable memory a sync;
a batch moved as five uploads and four downloads pays for nine. Here the arrays
of one direction go as one float64 vector (every value a batch moves is exact in
it: item and user rows stay below 2**31, weights are float32, times float64),
through a pinned staging buffer, and are cut and cast back on the other side.
On a CPU nothing is copied at all: tensors and arrays share memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from models.growth import grown_capacity

# What a batch moves, and the dtype each array comes back as.
_TORCH: dict[np.dtype[Any], torch.dtype] = {
    np.dtype(np.int64): torch.int64,
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float64): torch.float64,
}
_NUMPY: dict[torch.dtype, np.dtype[Any]] = {torch_t: np_t for np_t, torch_t in _TORCH.items()}


class Transfers:
    """Moves a batch's arrays to the device and its results back, one packed copy each way."""

    def __init__(self, device: torch.device, packed: bool | None = None) -> None:
        """Pack on an accelerator (default), or everywhere with `packed=True` (tests)."""
        self.device = device
        self.packed = device.type != "cpu" if packed is None else packed
        self._pinned = device.type == "cuda"
        self._up = torch.empty(0, dtype=torch.float64)
        self._down = torch.empty(0, dtype=torch.float64)
        self._uploaded: torch.cuda.Event | None = None

    def upload(self, *arrays: np.ndarray) -> list[torch.Tensor]:
        """The arrays on the device, each in its own dtype and shape, from one copy."""
        if not self.packed:
            return [torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in arrays]
        sizes = [int(a.size) for a in arrays]
        if self._uploaded is not None:  # the last copy out of the staging buffer must be done
            self._uploaded.synchronize()
        self._up = self._staging(self._up, sum(sizes))
        at = 0
        for array, size in zip(arrays, sizes, strict=True):
            _check_dtype(array.dtype)
            self._up[at : at + size] = torch.from_numpy(np.ascontiguousarray(array).reshape(-1))
            at += size
        sent = self._up[:at].to(self.device, non_blocking=self._pinned)
        if self._pinned:
            self._uploaded = torch.cuda.Event()  # type: ignore[no-untyped-call]
            self._uploaded.record()
        elif sent.data_ptr() == self._up.data_ptr():
            sent = sent.clone()  # the staging buffer is reused by the next upload
        out, at = [], 0
        for array, size in zip(arrays, sizes, strict=True):
            out.append(sent[at : at + size].to(_TORCH[array.dtype]).view(array.shape))
            at += size
        return out

    def download(self, *tensors: torch.Tensor) -> list[np.ndarray]:
        """The tensors on the host as arrays, each in its own dtype and shape, from one copy."""
        if not self.packed:
            return [t.detach().cpu().numpy() for t in tensors]
        for tensor in tensors:
            if tensor.dtype not in _NUMPY:
                raise TypeError(f"a batch moves int64, float32 and float64, not {tensor.dtype}")
        packed = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
        self._down = self._staging(self._down, packed.numel())
        host = self._down[: packed.numel()]
        host.copy_(packed)  # blocking: the batch's one read-back
        out, at = [], 0
        for tensor in tensors:
            size = tensor.numel()
            values = host[at : at + size].numpy().astype(_NUMPY[tensor.dtype])
            out.append(values.reshape(tuple(tensor.shape)))
            at += size
        return out

    def _staging(self, buffer: torch.Tensor, size: int) -> torch.Tensor:
        """`buffer`, or a larger one (pinned on a GPU) when `size` values do not fit."""
        if size <= buffer.numel():
            return buffer
        capacity = grown_capacity(buffer.numel(), size, None)
        return torch.empty(capacity, dtype=torch.float64, pin_memory=self._pinned)


def _check_dtype(dtype: np.dtype[Any]) -> None:
    """Only what float64 carries exactly: int64 rows, float32 weights and scores, float64 times."""
    if dtype not in _TORCH:
        raise TypeError(f"a batch moves int64, float32 and float64 arrays, not {dtype}")
