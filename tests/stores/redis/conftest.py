"""The Redis store's fixtures: the application on the test Redis only, the store on it, the
same Redis behind a slow proxy, and a redis-server of a test's own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pyramid_jeff import RedisStore

from ...redis_server import RedisServer
from ...slow_proxy import SlowProxy


@pytest.fixture
def store_url(redis_url: str) -> str:  # overrides the two-store parametrisation
    return redis_url


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStore]:
    with closing(RedisStore.from_url(redis_url)) as made:
        yield made


@pytest.fixture
def slow_proxy(redis_url: str) -> Iterator[SlowProxy]:
    """The test Redis behind a proxy that counts commands and round trips; every reply
    is a little late, so that two round trips can never pass for one."""
    parts = urlsplit(redis_url)
    proxy = SlowProxy((parts.hostname or "127.0.0.1", parts.port or 6379), delay=0.05)
    yield proxy
    proxy.close()


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer.start(tmp_path)
    yield server
    server.stop()
