"""Redis outages of one request: a frozen Redis is a 503 that destroys nothing, refused
connections fail fast, and Unix socket URLs. (The load under outages:
test_outages_under_load.py; the Redis store's other tests: see test_redis_app.py.)"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import redis

from pyramid_jeff import StoreUnavailable

from ...conftest import AppFactory
from ...helpers import fresh_client
from ...redis_server import RedisServer

pytestmark = pytest.mark.usefixtures("redis_client")


def test_outage_is_a_503_and_destroys_nothing(
    make_app: AppFactory, private_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(settings={"jeff.store": private_server.url})
    app.login("bob@example.com")
    leaving = fresh_client(app)
    leaving.login("carol@example.com")
    private_server.pause()
    try:
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="pyramid_jeff"):
            response = app.get("/protected", status=503)
        assert time.monotonic() - started < 3
        assert "Set-Cookie" not in response.headers
        assert response.headers["Retry-After"]
        assert "session store unavailable" in caplog.text
        assert app.get("/public", status=503).headers.get("Set-Cookie") is None
        assert app.get("/static", status=200).text == "no session needed here"
        response = fresh_client(app).post("/login", {"key": "eve@example.com"}, status=503)
        assert "Set-Cookie" not in response.headers
        assert "Set-Cookie" not in leaving.post("/logout", status=503).headers
    finally:
        private_server.resume()
    # Whatever needed the session failed; nothing was destroyed by the outage itself.
    assert app.get("/protected").text == "secret for bob@example.com"
    assert len(app.manager.sessions("bob@example.com")) == 1


def test_refused_connections_fail_fast(make_app: AppFactory, private_server: RedisServer) -> None:
    app = make_app(settings={"jeff.store": private_server.url})
    app.login("bob@example.com")
    private_server.stop()
    started = time.monotonic()
    app.get("/protected", status=503)
    assert time.monotonic() - started < 2
    with pytest.raises(StoreUnavailable):
        app.manager.sessions("bob@example.com")
    private_server.restart()
    app.get("/protected", status=303)  # a restarted, empty Redis: the cookie is dead now


def test_unix_socket_urls(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    server = RedisServer.start(tmp_path, extra_args=("--unixsocket", str(socket_path)))
    try:
        from pyramid.config import Configurator
        from pyramid.interfaces import ISecurityPolicy

        config = Configurator(settings={"jeff.store": f"unix://{socket_path}?db=3"})
        config.include("pyramid_jeff")
        manager = config.make_wsgi_app().registry.getUtility(ISecurityPolicy).manager
        session, credential = manager.create("socket@example.com")
        assert manager.verify(credential) == session
        assert redis.Redis(unix_socket_path=str(socket_path), db=3).dbsize() == 1
    finally:
        server.stop()
