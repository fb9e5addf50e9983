"""The memcached store's fixtures: the shared server emptied, the store on it, and servers
of a test's own (to kill or freeze), one or two."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from pyramid_jeff.stores.memcached import MemcachedStore

from ...conftest import need
from ...memcached_server import MemcachedServer
from .helpers import RoundTrips


@pytest.fixture
def memcached(memcached_server: MemcachedServer) -> MemcachedServer:
    """The shared server, emptied for this test."""
    memcached_server.flush()
    return memcached_server


@pytest.fixture
def store(memcached: MemcachedServer) -> Iterator[MemcachedStore]:
    with closing(MemcachedStore.from_url(memcached.url)) as made:
        yield made


@pytest.fixture
def private(tmp_path: Path) -> Iterator[MemcachedServer]:
    """A server of this test's own, to kill or freeze."""
    if MemcachedServer.binary() is None:
        need("memcached is not installed (apt-get install memcached)")
    server = MemcachedServer.start(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def two(tmp_path: Path) -> Iterator[list[MemcachedServer]]:
    """Two servers of this test's own, in the order of the store's URL."""
    if MemcachedServer.binary() is None:
        need("memcached is not installed (apt-get install memcached)")
    servers = [MemcachedServer.start(tmp_path / name) for name in ("a", "b")]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    return RoundTrips(monkeypatch)
