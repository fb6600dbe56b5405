"""State dicts: how each stateful part hands over its state and takes it back.

torch's habit: a state dict maps names to values, a part that holds parts
prefixes their names with its own (`user_table.weight`), and nothing outside a
part reads its fields. A value is either a tensor (on the CPU, contiguous, a
copy: later learning cannot change it) or a plain JSON value. The checkpoint
module stores tensors in safetensors and the rest in its JSON manifest, and
knows nothing else of the parts. A state that does not fit the part loading it
raises `StateError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

import torch

from models.errors import StateError

JSON: TypeAlias = bool | int | float | str | list["JSON"] | dict[str, "JSON"] | None
StateDict: TypeAlias = dict[str, "torch.Tensor | JSON"]


def host_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy of `tensor` that shares no memory with it (even on the CPU)."""
    return tensor.detach().to("cpu", copy=True, memory_format=torch.contiguous_format)


def prefixed(prefix: str, state: Mapping[str, torch.Tensor | JSON]) -> StateDict:
    """`state` with every name under `prefix.`: how a part nests the state of its parts."""
    return {f"{prefix}.{name}": value for name, value in state.items()}


def part(state: Mapping[str, torch.Tensor | JSON], prefix: str) -> StateDict:
    """The names under `prefix.`, with it taken off: the state of one nested part."""
    head = f"{prefix}."
    return {name[len(head) :]: value for name, value in state.items() if name.startswith(head)}


def tensor(
    state: Mapping[str, torch.Tensor | JSON],
    name: str,
    shape: tuple[int | None, ...],
    dtype: torch.dtype,
) -> torch.Tensor:
    """The tensor `name`, checked against `shape` (None: any size) and cast to `dtype`."""
    value = state.get(name)
    if not isinstance(value, torch.Tensor):
        raise StateError(f"{name}: a tensor is missing")
    if value.dim() != len(shape) or any(
        want is not None and got != want for got, want in zip(value.shape, shape, strict=True)
    ):
        want_shape = tuple("*" if size is None else size for size in shape)
        raise StateError(f"{name}: shape {tuple(value.shape)}, expected {want_shape}")
    if value.is_floating_point() != dtype.is_floating_point:
        raise StateError(f"{name}: dtype {value.dtype}, expected {dtype}")
    return value.to(dtype)


def value(state: Mapping[str, torch.Tensor | JSON], name: str) -> JSON:
    """The plain value `name` (a tensor there is an error)."""
    if name not in state:
        raise StateError(f"{name}: missing")
    found = state[name]
    if isinstance(found, torch.Tensor):
        raise StateError(f"{name}: a tensor where a plain value belongs")
    return found


def integer(state: Mapping[str, torch.Tensor | JSON], name: str) -> int:
    """The integer `name`."""
    found = value(state, name)
    if isinstance(found, bool) or not isinstance(found, int):
        raise StateError(f"{name}: {found!r} is not an integer")
    return found


def number(state: Mapping[str, torch.Tensor | JSON], name: str) -> float:
    """The number `name`, as a float (JSON writes 1.0 as 1)."""
    found = value(state, name)
    if isinstance(found, bool) or not isinstance(found, (int, float)):
        raise StateError(f"{name}: {found!r} is not a number")
    return float(found)


def sequence(state: Mapping[str, torch.Tensor | JSON], name: str) -> list[JSON]:
    """The list `name`."""
    found = value(state, name)
    if not isinstance(found, list):
        raise StateError(f"{name}: {found!r} is not a list")
    return found


def rows_of(state: Mapping[str, torch.Tensor | JSON], name: str) -> int:
    """Rows of the tensor `name` (its first dimension), to check parts against each other."""
    found = state.get(name)
    if not isinstance(found, torch.Tensor) or found.dim() == 0:
        raise StateError(f"{name}: a tensor is missing")
    return int(found.shape[0])
