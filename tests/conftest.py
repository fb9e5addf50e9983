"""Fixtures shared by the functional tests: a private Redis, the stores, the test app."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import webtest
from pyramid.config import Configurator

from pyramid_jeff import SessionManager, SessionStore, make_store
from pyramid_jeff.settings import parse_settings
from pyramid_jeff.testing import jeff_policy

from .app import make_wsgi_app
from .helpers import jeff_config
from .memcached_server import MemcachedServer
from .redis_server import RedisServer

IN_CI = os.environ.get("CI", "").lower() == "true"
HTTPS = {"wsgi.url_scheme": "https", "HTTP_HOST": "example.com", "REMOTE_ADDR": "192.0.2.1"}


def need(reason: str) -> None:
    """Skip locally, fail in CI: CI must run every test against real services."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis only these tests use: ``REDIS_URL`` if set, else a private redis-server."""
    external = os.environ.get("REDIS_URL")
    if external:
        yield external
        return
    if RedisServer.binary() is None:
        need("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer.start(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def memcached_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemcachedServer]:
    """A private memcached, started from the binary on a free port."""
    if MemcachedServer.binary() is None:
        need("memcached is not installed (apt-get install memcached)")
    server = MemcachedServer.start(tmp_path_factory.mktemp("memcached"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def memcached_url(memcached_server: MemcachedServer) -> str:
    return memcached_server.url


@pytest.fixture
def memcached_client(memcached_server: MemcachedServer) -> MemcachedServer:
    """The private memcached, emptied for this test (the flush waits for its reply)."""
    memcached_server.flush()
    return memcached_server


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sessions.sqlite'}"


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    """A database of this test's own on the machine's PostgreSQL (127.0.0.1:5432)."""
    from .sql_databases import DatabaseUnavailable, postgresql_database

    try:
        with postgresql_database() as url:
            yield url
    except DatabaseUnavailable as exc:
        need(f"PostgreSQL is not reachable: {exc}")


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A database of this test's own on the machine's MariaDB (127.0.0.1:3306)."""
    from .sql_databases import DatabaseUnavailable, mariadb_database

    try:
        with mariadb_database() as url:
            yield url
    except DatabaseUnavailable as exc:
        need(f"MariaDB is not reachable: {exc}")


# Every store pyramid_jeff ships; the SQL ones on SQLite, PostgreSQL and MariaDB.
ALL_STORES = ("memory", "redis", "memcached", "sqlite", "postgresql", "mariadb")


def clean_store_url(request: pytest.FixtureRequest, kind: str) -> str:
    """The ``jeff.store`` URL of an empty store of ``kind`` for the current test."""
    if kind == "memory":
        return "memory://"
    if kind == "redis":
        request.getfixturevalue("redis_client")  # a clean database for this test
        url: str = request.getfixturevalue("redis_url")
        return url
    if kind == "memcached":
        request.getfixturevalue("memcached_client")  # flushed for this test
        url = request.getfixturevalue("memcached_url")
        return url
    url = request.getfixturevalue(f"{kind}_url")  # a database of this test's own
    return url


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Behaviour of the Pyramid layer, on the embedded and the networked store."""
    return clean_store_url(request, request.param)


@pytest.fixture(params=ALL_STORES)
def any_store_url(request: pytest.FixtureRequest) -> str:
    """The same test on every store."""
    return clean_store_url(request, request.param)


@pytest.fixture
def any_store(any_store_url: str) -> Iterator[SessionStore]:
    """An empty store of each kind, built from its URL as ``jeff.store`` would build it."""
    store = make_store(parse_settings({"jeff.store": any_store_url}), {})
    yield store
    store.close()


class JeffTestApp(webtest.TestApp):
    manager: SessionManager

    def login(self, key: str = "alice@example.com", **form: Any) -> webtest.TestResponse:
        return self.post("/login", {"key": key, **form}, status=303)


AppFactory = Callable[..., JeffTestApp]


@pytest.fixture
def make_app(store_url: str) -> AppFactory:
    """``make_app(**jeff_settings)``: a WebTest app over https on the current store.

    Keyword names become ``jeff.<name>`` settings; pass ``settings={...}`` for full keys.
    """

    def factory(settings: dict[str, Any] | None = None, **jeff: Any) -> JeffTestApp:
        all_settings = {"jeff.store": store_url, "jeff.login_url": "/login"}
        all_settings.update({f"jeff.{name}": value for name, value in jeff.items()})
        all_settings.update(settings or {})
        wsgi = make_wsgi_app(all_settings)
        app = JeffTestApp(wsgi, extra_environ=dict(HTTPS))
        app.manager = jeff_policy(wsgi.registry).manager
        return app

    return factory


@pytest.fixture
def app(make_app: AppFactory) -> JeffTestApp:
    return make_app()


ConfigFactory = Callable[..., Configurator]


@pytest.fixture
def make_config() -> ConfigFactory:
    """``make_config(settings=None, root_factory=None, **jeff)``: :func:`helpers.jeff_config`,
    a Configurator that has included pyramid_jeff (``jeff.<name>`` from each keyword)."""
    return jeff_config


@pytest.fixture
def config(make_config: ConfigFactory) -> Iterator[Configurator]:
    """A Configurator that has included pyramid_jeff, on the memory store."""
    yield make_config(store="memory://")
