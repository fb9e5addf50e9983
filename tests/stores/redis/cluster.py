"""Redis Cluster helpers: three primaries ready, the node of a key, one key on each
primary, the commands the primaries ran."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import redis

from pyramid_jeff import RedisStore
from pyramid_jeff.credentials import key_digest

from ...redis_server import RedisServer

KEYS = [f"user{i}@example.com" for i in range(30)]


def wait_for_cluster(nodes: list[RedisServer]) -> None:
    # Every node must see the whole cluster: a node that has not yet heard of the
    # others answers CLUSTERDOWN (asking only the first one made this test flaky).
    clients = [redis.Redis(port=node.port) for node in nodes]
    deadline = time.monotonic() + 30
    while not all(
        info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == 3
        for info in (client.cluster("info") for client in clients)
    ):
        if time.monotonic() > deadline:
            pytest.fail("the test cluster did not become ready")
        time.sleep(0.1)
    for client in clients:
        client.close()


def node_port(store: RedisStore, key: str) -> int:
    port: int = store.client.get_node_from_key(store.hash_key(key_digest(key))).port
    return port


def spread_keys(store: RedisStore) -> list[str]:
    """One key on each primary."""
    by_node = {node_port(store, key): key for key in KEYS}
    assert len(by_node) == 3
    return list(by_node.values())


def primaries(store: RedisStore) -> list[redis.Redis]:
    return [store.client.get_redis_connection(node) for node in store.client.get_primaries()]


class Commands:
    """INFO commandstats summed over the primaries, without the cluster's own upkeep."""

    def __init__(self, store: RedisStore) -> None:
        self.nodes = primaries(store)

    def __enter__(self) -> Commands:
        for node in self.nodes:
            node.config_resetstat()
        return self

    def __exit__(self, *exc: object) -> None:
        self.counts: Counter[str] = Counter()
        for node in self.nodes:
            for name, value in node.info("commandstats").items():
                command = name.removeprefix("cmdstat_")
                if command.split("|")[0] not in ("info", "config", "cluster", "command", "ping"):
                    self.counts[command] += int(value["calls"])
