"""stream.reader on a real Valkey: an app's read of a list, with the cold-start fallback."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from stream.payload import Recommendation, encode_recommendation
from stream.reader import BadListError, connect, get_recommendations


def _payload(items: list[str], version: int = 7) -> bytes:
    scores = [float(len(items) - n) for n in range(len(items))]
    return encode_recommendation(Recommendation("u", items, scores, 100.0), 200.0, version)


def test_reads_the_users_own_list_cut_to_k(redis_client: Any, names: Any) -> None:
    """A stored list comes back typed, best first, cut to k, and not marked cold-start."""
    redis_client.set(f"{names.prefix}u1", _payload(["a", "b", "c"]))
    redis_client.set(names.cold_start_key, _payload(["z"], version=1))
    rec = get_recommendations(
        redis_client, "u1", 2, prefix=names.prefix, cold_start_key=names.cold_start_key
    )
    assert rec is not None
    assert (rec.items, rec.scores, rec.version, rec.cold_start) == (
        ["a", "b"],
        [3.0, 2.0],
        7,
        False,
    )
    assert (rec.published_ts, rec.event_ts) == (200.0, 100.0)
    assert rec.age_s(now=205.0) == 5.0


def test_falls_back_to_the_cold_start_list(redis_client: Any, names: Any) -> None:
    """A user without a list gets the cold-start list, marked as such; with neither, None."""
    kwargs = {"prefix": names.prefix, "cold_start_key": names.cold_start_key}
    assert get_recommendations(redis_client, "new", **kwargs) is None
    redis_client.set(names.cold_start_key, _payload(["p1", "p2"], version=4))
    rec = get_recommendations(redis_client, "new", **kwargs)
    assert rec is not None
    assert (rec.items, rec.version, rec.cold_start) == (["p1", "p2"], 4, True)
    assert get_recommendations(redis_client, "new", prefix=names.prefix, cold_start_key="") is None


def test_a_value_in_another_shape_is_refused(redis_client: Any, names: Any) -> None:
    """Another writer's value under the key raises BadListError rather than a wrong list."""
    redis_client.set(f"{names.prefix}odd", msgpack.packb({"items": ["a"], "scores": []}))
    with pytest.raises(BadListError, match="1 items but 0 scores"):
        get_recommendations(redis_client, "odd", prefix=names.prefix)


def test_connect_reads_what_the_worker_wrote(redis_server: Any, names: Any) -> None:
    """A client from `connect(url)` reads a list published by the worker's own sink."""
    from stream.redis_sink import RedisSink

    sink = RedisSink(redis_server.url, prefix=names.prefix, ttl_s=60)
    sink.publish([("u9", _payload(["x", "y"]))])
    sink.close()
    client = connect(redis_server.url)
    try:
        rec = get_recommendations(client, "u9", prefix=names.prefix, cold_start_key="")
    finally:
        client.close()
    assert rec is not None
    assert rec.items == ["x", "y"]
