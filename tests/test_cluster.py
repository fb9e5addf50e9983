"""Redis Cluster: three real redis-server nodes, sessions of many keys spread over them."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pyramid_jeff import RedisStore, SessionManager
from pyramid_jeff.credentials import key_digest

from .conftest import need
from .redis_server import RedisServer


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if RedisServer.binary() is None or shutil.which("redis-cli") is None:
        need("redis-server and redis-cli are needed for the cluster test")
    nodes = []
    try:
        for _ in range(3):
            workdir = tmp_path_factory.mktemp("cluster")
            args = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
            nodes.append(RedisServer.start(Path(workdir), extra_args=args))
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
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
        yield f"redis://127.0.0.1:{nodes[0].port}/0"
    finally:
        for node in nodes:
            node.stop()


def test_sessions_work_across_cluster_nodes(cluster_url: str) -> None:
    store = RedisStore.from_url(cluster_url, cluster=True)
    ticks = iter(range(1_800_000_000_000, 1_900_000_000_000))
    manager = SessionManager(store, max_sessions=3, clock=lambda: next(ticks))
    keys = [f"user{i}@example.com" for i in range(30)]
    credentials = {key: [manager.create(key)[1] for _ in range(4)] for key in keys}

    slots = {store.client.keyslot(store.hash_key(key_digest(key))) for key in keys}
    nodes = {store.client.get_node_from_key(store.hash_key(key_digest(k))).port for k in keys}
    assert len(nodes) == 3  # the keys really are spread over the three nodes
    assert len(slots) > 3

    for key in keys:
        first, *rest = credentials[key]
        assert manager.verify(first) is None  # evicted: max_sessions = 3
        assert all(manager.verify(c) is not None for c in rest)
        assert len(manager.sessions(key)) == 3
    assert manager.revoke(keys[0], rest[0].session_id) is False  # another key's session
    assert manager.revoke_all(keys[0], keep=credentials[keys[0]][-1].session_id) == 2
    assert [s.id for s in manager.sessions(keys[0])] == [credentials[keys[0]][-1].session_id]


def test_settings_select_the_cluster_client(cluster_url: str) -> None:
    from pyramid.config import Configurator
    from pyramid.interfaces import ISecurityPolicy

    config = Configurator(settings={"jeff.store": cluster_url, "jeff.redis.cluster": "true"})
    config.include("pyramid_jeff")
    app = config.make_wsgi_app()
    manager = app.registry.getUtility(ISecurityPolicy).manager
    assert isinstance(manager.store.client, redis.RedisCluster)
    session, credential = manager.create("cluster@example.com")
    assert manager.verify(credential) == session
