"""Unit tests for the catalogue control messages: `decode_control`."""

from __future__ import annotations

import json

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.control import OPS, ControlOp, decode_control
from stream.errors import BadEvent


@pytest.mark.parametrize("op", OPS)
def test_json_and_msgpack_decode_alike(op: str) -> None:
    """Both framings of the same map give the same operation; int ids become str."""
    message = {"op": op, "item": 17}
    assert decode_control(json.dumps(message).encode()) == ControlOp(op, "17")
    assert decode_control(msgpack.packb(message)) == ControlOp(op, "17")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty_message"),
        (b"{oops", "invalid_json"),
        (msgpack.packb([1, 2]), "not_a_map"),
        (msgpack.packb({"item": "i1"}), "missing_field:op"),
        (msgpack.packb({"op": 3, "item": "i1"}), "bad_type:op"),
        (msgpack.packb({"op": "delete", "item": "i1"}), "bad_value:op"),
        (msgpack.packb({"op": "remove"}), "missing_field:item"),
        (msgpack.packb({"op": "remove", "item": ""}), "bad_length:item"),
        (msgpack.packb({"op": "remove", "item": None}), "bad_type:item"),
        (b"x" * (64 * 1024 + 1), "too_large"),
    ],
)
def test_bad_messages_name_their_reason(value: bytes, reason: str) -> None:
    """Every way a control message can be wrong raises `BadEvent` with a reason."""
    with pytest.raises(BadEvent) as caught:
        decode_control(value)
    assert str(caught.value) == reason


@given(st.binary(max_size=256))
def test_any_bytes_decode_or_raise_bad_event(value: bytes) -> None:
    """Whatever the bytes, decoding gives an operation or `BadEvent`, nothing else."""
    try:
        op = decode_control(value)
    except BadEvent:
        return
    assert op.op in OPS
