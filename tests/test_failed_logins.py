"""A login counts once its cookie is on its way: a view that fails after ``remember()``
leaves the browser as it was (no surprise logout) and no session nobody holds."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import webtest
from pyramid.events import NewResponse
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.response import Response
from pyramid.scripting import prepare
from pyramid.security import forget, remember

from pyramid_jeff import SessionManager
from pyramid_jeff.testing import jeff_policy

from .conftest import HTTPS
from .helpers import jeff_config


class Boom(Exception):
    pass


def make_app(store_url: str, **settings: Any) -> tuple[webtest.TestApp, SessionManager]:
    config = jeff_config({"jeff.store": store_url, **settings})
    pending: list[list[tuple[str, str]]] = []

    def login(request: Request) -> Response:
        return HTTPSeeOther("/", headers=remember(request, request.params["key"]))

    def login_then_fail(request: Request) -> Response:
        remember(request, request.params["key"])
        raise Boom

    def login_then_error_page(request: Request) -> Response:
        remember(request, request.params["key"])
        raise RuntimeError("rendered by the exception view below")

    def login_by_callback(request: Request) -> Response:
        headers = remember(request, request.params["key"])
        request.add_response_callback(lambda req, resp: resp.headerlist.extend(headers))
        return Response("in")

    def login_by_subscriber(request: Request) -> Response:
        pending.append(remember(request, request.params["key"]))
        return Response("in")

    def login_twice(request: Request) -> Response:
        remember(request, request.params["key"])
        return HTTPSeeOther("/", headers=remember(request, request.params["key"]))

    def login_then_logout(request: Request) -> Response:
        remember(request, request.params["key"])
        return HTTPSeeOther("/", headers=forget(request))

    def whoami(request: Request) -> Response:
        return Response(str(request.authenticated_userid))

    def on_response(event: NewResponse) -> None:
        while pending:
            event.response.headerlist.extend(pending.pop())

    config.add_subscriber(on_response, NewResponse)
    for view in (
        login,
        login_then_fail,
        login_then_error_page,
        login_by_callback,
        login_by_subscriber,
        login_twice,
        login_then_logout,
        whoami,
    ):
        config.add_route(view.__name__, f"/{view.__name__}")
        config.add_view(view, route_name=view.__name__)
    config.add_exception_view(lambda exc, request: Response("sorry", status=500), RuntimeError)
    wsgi = config.make_wsgi_app()
    manager = jeff_policy(wsgi.registry).manager
    return webtest.TestApp(wsgi, extra_environ=dict(HTTPS)), manager


def test_a_failed_first_login_leaves_nothing_behind(store_url: str) -> None:
    app, manager = make_app(store_url)
    with pytest.raises(Boom):
        app.get("/login_then_fail", {"key": "ann"})
    assert manager.sessions("ann") == []
    response = app.get("/login_then_error_page", {"key": "ann"}, status=500)
    assert response.headers.getall("Set-Cookie") == []
    assert manager.sessions("ann") == []
    assert app.get("/whoami").text == "None"


@pytest.mark.parametrize("failure", ["/login_then_fail", "/login_then_error_page"])
def test_a_failed_relogin_keeps_the_browser_logged_in(store_url: str, failure: str) -> None:
    app, manager = make_app(store_url)
    app.get("/login", {"key": "ann"}, status=303)
    (before,) = manager.sessions("ann")
    with contextlib.suppress(Boom):  # raised through, or rendered as a 500
        app.get(failure, {"key": "ann"}, status=500)
    assert app.get("/whoami").text == "ann"
    assert manager.sessions("ann") == [before]
    # As another user too: the browser stays who it was.
    with pytest.raises(Boom):
        app.get("/login_then_fail", {"key": "bob"})
    assert app.get("/whoami").text == "ann"
    assert manager.sessions("bob") == []


@pytest.mark.parametrize("how", ["/login_by_callback", "/login_by_subscriber"])
def test_a_cookie_sent_by_a_callback_or_subscriber_counts(store_url: str, how: str) -> None:
    app, manager = make_app(store_url)
    app.get("/login", {"key": "ann"}, status=303)
    app.get(how, {"key": "ann"})
    assert app.get("/whoami").text == "ann"
    assert len(manager.sessions("ann")) == 1  # the new one; the old one ended


def test_a_relogin_at_the_cap_evicts_no_other_device(store_url: str) -> None:
    app, manager = make_app(store_url, **{"jeff.max_sessions": "2"})
    phone = webtest.TestApp(app.app, extra_environ=dict(HTTPS))
    phone.get("/login", {"key": "ann"}, status=303)
    app.get("/login", {"key": "ann"}, status=303)
    app.get("/login", {"key": "ann"}, status=303)  # this browser logs in again
    assert phone.get("/whoami").text == "ann"
    assert app.get("/whoami").text == "ann"
    assert len(manager.sessions("ann")) == 2


def test_two_logins_in_one_request_leave_one_session(store_url: str) -> None:
    app, manager = make_app(store_url)
    app.get("/login", {"key": "ann"}, status=303)
    app.get("/login_twice", {"key": "ann"}, status=303)
    assert app.get("/whoami").text == "ann"
    assert len(manager.sessions("ann")) == 1


def test_a_login_then_logout_in_one_request_leaves_nothing(store_url: str) -> None:
    app, manager = make_app(store_url)
    app.get("/login", {"key": "ann"}, status=303)
    app.get("/login_then_logout", {"key": "ann"}, status=303)
    assert app.get("/whoami").text == "None"
    assert manager.sessions("ann") == []


def test_outside_a_request_remember_replaces_at_once(store_url: str) -> None:
    app, manager = make_app(store_url)
    with prepare(registry=app.app.registry) as env:  # type: ignore[attr-defined]
        remember(env["request"], "ann")
        assert len(manager.sessions("ann")) == 1
