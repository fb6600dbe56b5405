"""The Redis sink against a real server, and against none."""

from __future__ import annotations

from typing import Any

import pytest

from stream.errors import TransientError
from stream.payload import Recommendation, encode_recommendation
from stream.redis_sink import RedisSink
from worker.testing.embedded import free_port


def test_publish_writes_every_list_with_its_ttl(redis_server: Any, redis_client: Any) -> None:
    """One publish call writes each list under its key, decodable, with the TTL set."""
    sink = RedisSink(redis_server.url, prefix="sinktest:", ttl_s=77)
    recs = [Recommendation(f"u{n}", [f"i{n}", "i0"], [2.0, 1.5], float(n)) for n in range(500)]
    sink.publish([(r.user, encode_recommendation(r, 9.0, 3)) for r in recs])
    for rec in (recs[0], recs[-1]):
        assert sink.get(rec.user) == {
            "items": rec.items,
            "scores": rec.scores,
            "ts": 9.0,
            "event_ts": rec.event_ts,
            "version": 3,
        }
        assert 0 < redis_client.ttl(f"sinktest:{rec.user}") <= 77
    sink.close()


def test_publish_to_an_absent_server_is_transient() -> None:
    """With nothing listening, publish raises TransientError (the loop retries), not a crash."""
    sink = RedisSink(f"redis://127.0.0.1:{free_port()}/0", prefix="x:", ttl_s=5, timeout_s=0.5)
    rec = Recommendation("u", ["i"], [1.0], 0.0)
    with pytest.raises(TransientError):
        sink.publish([(rec.user, encode_recommendation(rec, 0.0, 0))])
    assert sink.ping() is False
    sink.close()


def test_publish_writes_the_cold_start_list_under_its_own_key(
    redis_server: Any, redis_client: Any
) -> None:
    """A batch's cold-start list goes under the cold-start key, with the same TTL and map."""
    sink = RedisSink(
        redis_server.url, prefix="coldtest:", ttl_s=55, cold_start_key="coldtest-cold-start"
    )
    assert sink.get_cold_start() is None
    rec = Recommendation("u1", ["i1"], [1.0], 1.0)
    cold = Recommendation("", ["i9", "i8"], [2.0, 1.0], 3.0)
    sink.publish(
        [(rec.user, encode_recommendation(rec, 4.0, 2))], encode_recommendation(cold, 4.0, 2)
    )
    assert sink.get_cold_start() == {
        "items": ["i9", "i8"],
        "scores": [2.0, 1.0],
        "ts": 4.0,
        "event_ts": 3.0,
        "version": 2,
    }
    assert 0 < redis_client.ttl("coldtest-cold-start") <= 55
    assert sink.get("u1") is not None
    sink.close()


def test_a_large_batch_over_several_connections_writes_every_list(
    redis_server: Any, redis_client: Any
) -> None:
    """A batch split over four connections still writes every list, the cold start too."""
    sink = RedisSink(
        redis_server.url, prefix="lanes:", ttl_s=60, connections=4, cold_start_key="lanes-cold"
    )
    recs = [Recommendation(f"u{n}", [f"i{n}"], [1.0], float(n)) for n in range(5_000)]
    cold = Recommendation("", ["i0"], [0.5], 1.0)
    sink.publish(
        [(r.user, encode_recommendation(r, 2.0, 1)) for r in recs],
        encode_recommendation(cold, 2.0, 1),
    )
    assert len(redis_client.keys("lanes:*")) == 5_000
    assert sink.get("u4999") == {
        "items": ["i4999"],
        "scores": [1.0],
        "ts": 2.0,
        "event_ts": 4999.0,
        "version": 1,
    }
    assert sink.get_cold_start() is not None
    sink.close()


def test_a_refusal_on_one_connection_is_raised_as_its_kind(redis_server: Any) -> None:
    """A refused write in one of several slices still surfaces as TransientError/FatalError."""
    from stream.errors import FatalError

    sink = RedisSink(redis_server.url, prefix="lanes2:", ttl_s=60, connections=4)
    sink._ttl = b"not-a-number"  # every SET is refused: EX needs an integer
    rec = Recommendation("u", ["i"], [1.0], 0.0)
    payload = encode_recommendation(rec, 0.0, 0)
    with pytest.raises(FatalError):
        sink.publish([(f"u{n}", payload) for n in range(3_000)])
    sink._ttl = b"60"
    sink.publish([("u", payload)])  # connections dropped after the refusal; the next works
    sink.close()


def test_a_refusal_in_the_middle_of_a_batch_is_raised_after_every_reply(
    redis_server: Any, redis_client: Any
) -> None:
    """One refused SET among thousands raises FatalError; the SETs around it were all written."""
    from stream.errors import FatalError

    # An ACL user that may write only `midbatch:ok*`: the one other key is refused (NOPERM).
    redis_client.execute_command(
        "ACL", "SETUSER", "midbatch", "on", ">pw", "~midbatch:ok*", "+@all"
    )
    try:
        url = f"redis://midbatch:pw@127.0.0.1:{redis_server.port}/0"
        sink = RedisSink(url, prefix="midbatch:", ttl_s=60, connections=1)
        rec = Recommendation("u", ["i"], [1.0], 0.0)
        payload = encode_recommendation(rec, 0.0, 0)
        users = [f"ok{n}" for n in range(2_000)]
        users.insert(1_000, "refused")
        with pytest.raises(FatalError, match=r"(?i)no permissions"):
            sink.publish([(user, payload) for user in users])
        assert len(redis_client.keys("midbatch:ok*")) == 2_000
        assert redis_client.exists("midbatch:refused") == 0
        sink.publish([("ok0", payload)])  # the connection stayed in step: the next batch works
        assert sink.get("ok0") is not None
        sink.close()
    finally:
        redis_client.execute_command("ACL", "DELUSER", "midbatch")


def test_a_server_out_of_memory_is_a_passing_refusal(redis_server: Any, redis_client: Any) -> None:
    """`-OOM` (maxmemory reached) is retried as transient, and the next batch goes through."""
    sink = RedisSink(redis_server.url, prefix="oomtest:", ttl_s=30)
    rec = Recommendation("u", ["i"], [1.0], 0.0)
    redis_client.config_set("maxmemory", "1")  # every write is over the limit now
    try:
        with pytest.raises(TransientError, match="for now"):
            sink.publish([(rec.user, encode_recommendation(rec, 0.0, 0))])
    finally:
        redis_client.config_set("maxmemory", "0")
    sink.publish([(rec.user, encode_recommendation(rec, 0.0, 0))])
    assert sink.get("u") is not None
    sink.close()
