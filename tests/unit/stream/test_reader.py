"""The README's byte-layout example is what the encoder writes and what the reader decodes."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from stream.payload import Recommendation, encode_recommendation
from stream.reader import BadListError, decode_list

README = Path(__file__).resolve().parents[3] / "README.md"


def _readme_hex() -> bytes:
    """The hex dump in the README's Redis contract section (bytes left, notes right)."""
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- payload-hex -->", 2)[1].split("```")[1]
    return bytes.fromhex(" ".join(re.split(r"\s{2,}", line)[0] for line in block.splitlines()))


def test_readme_example_is_the_encoders_output() -> None:
    """The documented 71 bytes are exactly what the worker writes for that list."""
    rec = Recommendation("42", ["i7", "i3"], [0.5, 0.25], 1700000000.5)
    assert _readme_hex() == encode_recommendation(rec, 1700000001.25, 3)


def test_readme_example_decodes_to_the_documented_fields() -> None:
    """The reader turns the documented bytes into the documented values."""
    rec = decode_list(_readme_hex())
    assert (rec.items, rec.scores) == (["i7", "i3"], [0.5, 0.25])
    assert (rec.published_ts, rec.event_ts, rec.version) == (1700000001.25, 1700000000.5, 3)


@given(st.binary(max_size=64))
def test_decode_never_raises_anything_but_bad_list(raw: bytes) -> None:
    """Any bytes either decode to a list or raise BadListError, never another exception."""
    with contextlib.suppress(BadListError):
        decode_list(raw)
