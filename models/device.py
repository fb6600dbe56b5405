"""Pick the torch device once, from a setting, with a clear error for a bad one."""

from __future__ import annotations

import torch

from models.errors import ModelError


def resolve_device(name: str) -> torch.device:
    """Turn `auto`, `cpu`, `cuda` or `cuda:N` into a device that exists here.

    `auto` means the first GPU when torch sees one, else the CPU, so the same
    deployment runs on a laptop and on a GPU node.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ModelError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(f"device {name!r} asked for, but torch sees no CUDA GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ModelError(
                f"device {name!r} asked for, but only {torch.cuda.device_count()} GPU(s) exist"
            )
    elif device.type != "cpu":
        raise ModelError(f"unsupported device {name!r}: use auto, cpu, cuda or cuda:N")
    return device
