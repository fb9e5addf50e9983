"""Fixtures shared by the functional tests: a private Redis, the stores, the test app."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import webtest
from pyramid.interfaces import ISecurityPolicy

from pyramid_jeff import SessionManager

from .app import make_wsgi_app
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


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Every behaviour runs on both stores."""
    if request.param == "memory":
        return "memory://"
    request.getfixturevalue("redis_client")  # a clean database for this test
    url: str = request.getfixturevalue("redis_url")
    return url


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
        app.manager = wsgi.registry.getUtility(ISecurityPolicy).manager
        return app

    return factory


@pytest.fixture
def app(make_app: AppFactory) -> JeffTestApp:
    return make_app()
