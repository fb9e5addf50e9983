"""The demo's own 403, 404 and 503 pages."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NoReturn

import pytest
from pyramid.request import Request
from pyramid.router import Router

import pyramid_jeff_demo
import pyramid_jeff_demo.security
from pyramid_jeff import StoreUnavailable
from pyramid_jeff.testing import jeff_policy
from pyramid_jeff_demo.security import DEMO_PASSWORD

from ..helpers import on_memory
from .pages import (
    ALICE,
    BOB,
    Browser,
    browsers,
    jeff_cookies,
    logged_in,
    sent_to_login,
)

# --- error pages and the server --------------------------------------------------------------


def test_a_user_without_the_permission_gets_the_demos_403_page(browser: Browser) -> None:
    page = logged_in(browser(), BOB).get("/admin", status=403)
    assert "<h1>This page is not for your account</h1>" in page.text
    assert f"You are signed in as <strong>{BOB}</strong>" in page.text
    assert 'href="/static/demo.css' in page.text  # the demo's layout
    assert 'href="/">Back to the start</a>' in page.text
    assert 'href="/login?next=%2Fadmin">Sign in as someone else</a>' in page.text
    # Anonymous visitors still go to the login page: pyramid_jeff's forbidden view.
    sent_to_login(browser().get("/admin"), None, next="/admin")
    browser().get("/admin", headers={"Accept": "application/json"}, status=401)


@on_memory("demo_store_url")
def test_an_unknown_address_gets_the_demos_404_page(browser: Browser) -> None:
    client = browser()
    page = client.get("/no/such/page", status=404)
    assert "<h1>There is no such page</h1>" in page.text
    assert '<code class="path">/no/such/page</code>' in page.text
    assert 'href="/">Back to the start</a>' in page.text
    assert "<b>" not in client.get("/%3Cb%3E", status=404).text
    client.get("/static/nope.css", status=404)
    client.get("/logout", status=404)


PLUG = "redis: ConnectionError: the test pulled the plug"


@pytest.fixture
def outage(monkeypatch: pytest.MonkeyPatch) -> tuple[Router, Callable[[], None]]:
    """A demo on the memory store, and a function that makes its store fail from then on."""
    app = pyramid_jeff_demo.main({}, **{"jeff.store": "memory://", "jeff.cookie_secure": "false"})
    manager = jeff_policy(app.registry).manager

    def down(*args: object, **kwargs: object) -> NoReturn:
        raise StoreUnavailable(PLUG)

    def pull_the_plug() -> None:
        for method in ("check", "create"):
            monkeypatch.setattr(manager, method, down)

    return app, pull_the_plug


def test_a_store_outage_gets_the_demos_503_page(
    outage: tuple[Router, Callable[[], None]], caplog: pytest.LogCaptureFixture
) -> None:
    app, pull_the_plug = outage
    client = logged_in(browsers(app)(), BOB)
    anonymous = browsers(app)()
    login_page = anonymous.get("/login")
    pull_the_plug()
    caplog.set_level(logging.ERROR, logger="pyramid_jeff")
    res = client.get("/users?tab=1", status=503)
    # The demo's view replaced pyramid_jeff's, and kept what pyramid_jeff's does.
    assert "<h1>Sessions are out of reach for a moment</h1>" in res.text
    assert "try again in 5 seconds" in res.text
    assert 'href="/users?tab=1">Try again</a>' in res.text
    assert "Signed in as" not in res.text  # the page never reads the session
    assert res.headers["Retry-After"] == "5"
    assert "no-store" in res.headers["Cache-Control"]
    assert not res.headers.getall("Set-Cookie")
    logged = [
        r.getMessage()
        for r in caplog.records
        if r.name == "pyramid_jeff" or r.name.startswith("pyramid_jeff.")
    ]
    assert logged == [f"session store unavailable (GET /users): {PLUG}"]
    # A login during the outage: the same page, without a "try again" that would GET it.
    form = login_page.forms["login-form"]
    form["email"], form["password"] = BOB, DEMO_PASSWORD
    res = form.submit(status=503)
    assert "<h1>Sessions are out of reach for a moment</h1>" in res.text
    assert "Try again</a>" not in res.text
    assert not jeff_cookies(res)


@on_memory("demo_store_url")
@pytest.mark.parametrize("path", ["/login?next=%ff", "/login?jeff_reason=%ff", "/admin?email=%ff"])
def test_an_address_that_is_not_utf8_is_a_400_page_not_a_500(browser: Browser, path: str) -> None:
    page = logged_in(browser(), ALICE).get(path, status=400)
    assert "<h1>That address could not be read</h1>" in page.text
    assert 'href="/">Back to the start</a>' in page.text


@on_memory("demo_store_url")
def test_a_path_that_is_not_utf8_is_a_400_page_not_a_500(demo_app: Router) -> None:
    # Sent as a server passes it on (WebTest itself cannot build such a request).
    environ = {**Request.blank("/").environ, "PATH_INFO": "/\xff"}
    seen: list[str] = []
    body = b"".join(demo_app(environ, lambda status, headers, exc_info=None: seen.append(status)))
    assert seen == ["400 Bad Request"]
    assert b"<h1>That address could not be read</h1>" in body
