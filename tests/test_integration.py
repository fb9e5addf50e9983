"""pyramid_jeff beside the add-ons people use with it, and the memory store's housekeeping."""

from __future__ import annotations

import time
from pathlib import Path

import webtest
from pyramid.config import Configurator
from pyramid.response import Response

from pyramid_jeff import MemoryStore, SessionManager

from .app import Root
from .helpers import Clock
from .redis_server import RedisServer


def test_pyramid_tm_annotation_during_an_outage_is_a_503(tmp_path: Path) -> None:
    """pyramid_tm reads authenticated_userid in its tween, below ours: still a clean 503."""
    import transaction

    server = RedisServer.start(tmp_path)
    try:
        config = Configurator(
            settings={"jeff.store": server.url, "jeff.cookie_secure": "false"},
            root_factory=Root,
        )
        config.include("pyramid_tm")
        config.include("pyramid_jeff")
        seen: list[str | None] = []

        def view(request: object) -> Response:
            seen.append(transaction.get().user)
            return Response("ok")

        def login(request: object) -> Response:
            from pyramid.security import remember

            return Response("in", headers=remember(request, "tm@example.com"))

        config.add_route("view", "/")
        config.add_route("login", "/login")
        config.add_view(view, route_name="view")
        config.add_view(login, route_name="login")
        app = webtest.TestApp(config.make_wsgi_app())
        app.get("/login")
        app.get("/")
        assert seen == ["tm@example.com"]

        server.pause()
        try:
            started = time.monotonic()
            response = app.get("/", status=503)
            assert time.monotonic() - started < 3
            assert "Set-Cookie" not in response.headers
        finally:
            server.resume()
        app.get("/", status=200)
    finally:
        server.stop()


def test_memory_store_sweeps_expired_keys() -> None:
    clock = Clock()
    store = MemoryStore()
    manager = SessionManager(store, max_age=60, clock=clock)
    for number in range(100):
        manager.create(f"user{number}@example.com")
    assert len(store._sessions) == 100
    clock.advance(61)  # every session is past its absolute lifetime
    manager.create("late@example.com")
    assert len(store._sessions) == 1
    assert [s.key for s in manager.sessions("late@example.com")] == ["late@example.com"]
