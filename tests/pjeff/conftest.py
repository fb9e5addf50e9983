"""``site``: one ini file and application per store (Redis, memcached, SQLite, PostgreSQL),
shared by a module's tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pyramid.paster import get_app

from pyramid_jeff.testing import jeff_policy

from ..conftest import need
from ..sql_databases import DatabaseUnavailable, postgresql_database
from .cli import Site, write_ini


def _module_store_url(
    request: pytest.FixtureRequest, tmp: Path, stack: contextlib.ExitStack
) -> str:
    """An empty store shared by a module's tests (tests/conftest.py's are one per test)."""
    kind = request.param
    if kind == "redis":
        url: str = request.getfixturevalue("redis_url")
        client = redis.Redis.from_url(url, socket_timeout=5)
        client.flushdb()
        client.close()
        return url
    if kind == "memcached":
        url = request.getfixturevalue("memcached_url")
        request.getfixturevalue("memcached_server").flush()
        return url
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'sessions.sqlite'}"
    try:
        return stack.enter_context(postgresql_database())
    except DatabaseUnavailable as exc:
        need(f"PostgreSQL is not reachable: {exc}")
        raise


@pytest.fixture(scope="module", params=["redis", "memcached", "sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """One ini file and application per store, for the whole module: each test uses
    keys of its own."""
    tmp = tmp_path_factory.mktemp("pjeff")
    with contextlib.ExitStack() as stack:
        url = _module_store_url(request, tmp, stack)
        ini = write_ini(tmp / "app.ini", url, "jeff.idle_timeout = 7200\n")
        # The same, with the URL from the command line (--var).
        write_ini(tmp / "var.ini", "%(store_url)s")
        manager = jeff_policy(get_app(ini).registry).manager
        stack.callback(manager.store.close)
        yield Site(request.param, ini, manager)
