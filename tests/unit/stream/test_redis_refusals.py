"""Unit tests for `stream.redis_sink.passing_refusal`: which refusals the loop retries."""

from __future__ import annotations

import pytest
from redis._parsers import BaseParser

from stream.redis_sink import passing_refusal


@pytest.mark.parametrize(
    "reply",
    [
        "OOM command not allowed when used memory > 'maxmemory'.",
        "READONLY You can't write against a read only replica.",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "LOADING Redis is loading the dataset in memory",
        "BUSY Redis is busy running a script.",
        "CLUSTERDOWN The cluster is down",
    ],
)
def test_refusals_that_pass_are_retried_whatever_class_redis_py_gives_them(reply: str) -> None:
    """Each refusal that passes is recognised, although redis-py strips some of their codes."""
    assert passing_refusal(BaseParser.parse_error(reply))


@pytest.mark.parametrize(
    "reply",
    [
        "NOPERM User has no permissions to run the 'set' command",
        "ERR unknown command 'SETX'",
        "WRONGTYPE Operation against a key holding the wrong kind of value",
    ],
)
def test_refusals_for_good_are_not_retried(reply: str) -> None:
    """A refusal that waiting cannot cure (permissions, a bad command) stops the worker."""
    assert not passing_refusal(BaseParser.parse_error(reply))
