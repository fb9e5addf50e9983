"""The application of tests/account_app.py as a WebTest browser, its clock, and readers of
its answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import webtest
from pyramid.router import Router

from pyramid_jeff import SessionManager
from pyramid_jeff.events import SessionEnded
from pyramid_jeff.testing import CountingStore, jeff_policy

from .. import account_app
from ..account_app import EVENTS

HTTPS = {"wsgi.url_scheme": "https", "HTTP_HOST": "example.com"}
ALICE = "alice@example.com"
BOB = "bob@example.com"


class Clock:
    """The manager's clock, moved by the tests."""

    def __init__(self, manager: SessionManager) -> None:
        self.now = manager.clock()
        manager.clock = self

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


class App(webtest.TestApp):
    manager: SessionManager

    def log_in(self, key: str = ALICE, **kw: Any) -> webtest.TestResponse:
        return self.post("/login", {"key": key}, **kw)

    def browser(self) -> App:
        """Another browser on the same application."""
        other = App(self.app, extra_environ=dict(HTTPS))
        other.manager = self.manager
        return other


Factory = Callable[..., App]


def build_app(
    store_url: str,
    *,
    require_csrf: bool = False,
    tm: bool = False,
    configure: Callable[[Any], None] | None = None,
    **jeff: Any,
) -> App:
    settings = {"jeff.store": store_url, "jeff.login_url": "/login"}
    settings.update({f"jeff.{name}": str(value) for name, value in jeff.items()})
    wsgi = account_app.make_app(settings, csrf=require_csrf, tm=tm, configure=configure)
    app = App(wsgi, extra_environ=dict(HTTPS))
    app.manager = jeff_policy(wsgi.registry).manager
    return app


def counting_app(**jeff: str) -> tuple[webtest.TestApp, CountingStore, Router]:
    """The application on ``pyramid_jeff.testing.counting_store``, with these ``jeff.*``
    settings: a browser, the store that counts the calls made to it, and the application."""
    settings = {"jeff.store": "pyramid_jeff.testing.counting_store"}
    settings.update({f"jeff.{name}": value for name, value in jeff.items()})
    wsgi = account_app.make_app(settings)
    store = jeff_policy(wsgi.registry).manager.store
    assert isinstance(store, CountingStore)
    return webtest.TestApp(wsgi, extra_environ=dict(HTTPS)), store, wsgi


def where(response: webtest.TestResponse) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(response.headers["Location"])
    return parts.path, parse_qs(parts.query)


def session_id(app: App, key: str = ALICE) -> str:
    (newest, *_) = app.manager.sessions(key)
    return newest.id


def ended(reason: str | None = None) -> list[tuple[str, str, str]]:
    return [
        (e.key, e.session_id, e.reason)
        for e in EVENTS
        if isinstance(e, SessionEnded) and reason in (None, e.reason)
    ]


def login_reason(app: App) -> Any:
    return app.get("/login").json["reason"]


def cookie_header(value: str) -> dict[str, str]:
    # TestApp.set_cookie would quote a value holding dots.
    return {"Cookie": f"__Host-jeff={value}"}


def api_token(app: App, key: str = ALICE) -> str:
    res = app.post_json("/api/login", {"key": key})
    assert "Set-Cookie" not in res.headers or "jeff=" not in res.headers["Set-Cookie"]
    token: str = res.json["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
