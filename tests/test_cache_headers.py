"""A response built from the session never reaches a shared cache, whatever set its headers."""

from __future__ import annotations

from typing import Any

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.events import NewResponse
from pyramid.interfaces import INewResponse
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import remember

from .conftest import HTTPS

Headers = list[tuple[str, str]]


def make_app(headers: Headers, how: str) -> webtest.TestApp:
    """Each of ``headers`` is added to every response, by ``how``."""

    def add(response: Response) -> None:
        for name, value in headers:
            response.headerlist.append((name, value))

    config = Configurator()
    if how == "subscriber before include":
        config.add_subscriber(lambda event: add(event.response), NewResponse)
    config.include("pyramid_jeff")
    if how == "subscriber to the interface":
        config.add_subscriber(lambda event: add(event.response), INewResponse)
    if how == "subscriber to the class":
        config.add_subscriber(lambda event: add(event.response), NewResponse)

    def login(request: Request) -> Response:
        return Response("in", headers=remember(request, "ann"))

    def page(request: Request) -> Response:
        if how == "response callback":
            request.add_response_callback(lambda request, response: add(response))
        response = Response(f"hello {request.authenticated_userid}")
        if how == "view":
            add(response)
        return response

    def static(request: Request) -> Response:
        response = Response("the same for everyone")
        add(response)
        return response

    for name, view in [("login", login), ("page", page), ("static", static)]:
        config.add_route(name, f"/{name}")
        config.add_view(view, route_name=name)
    app = webtest.TestApp(config.make_wsgi_app(), extra_environ=dict(HTTPS))
    app.get("/login")
    return app


HOW = [
    "view",
    "response callback",
    "subscriber before include",
    "subscriber to the interface",
    "subscriber to the class",
]


def values(response: Any, name: str) -> list[str]:
    return list(response.headers.getall(name))


@pytest.mark.parametrize("how", HOW)
def test_public_caching_set_anywhere_is_made_private(how: str) -> None:
    app = make_app([("Cache-Control", "public, max-age=60, s-maxage=600")], how)
    response = app.get("/page")
    assert response.text == "hello ann"
    assert values(response, "Cache-Control") == ["private, max-age=60"]
    assert values(response, "Vary") == ["Cookie"]


@pytest.mark.parametrize(
    ("headers", "cache_control"),
    [
        ([("Cache-Control", "public"), ("Cache-Control", "max-age=60")], "private, max-age=60"),
        ([("Cache-Control", 'private="Set-Cookie", max-age=60')], "private, max-age=60"),
        (
            [("Cache-Control", 'no-cache="Set-Cookie, X-A", public')],
            'private, no-cache="Set-Cookie, X-A"',
        ),
        ([("Cache-Control", "PUBLIC, S-MAXAGE=5")], "private"),
        ([("Cache-Control", "no-store, public")], "no-store, public"),
        ([("Cache-Control", "private, max-age=5")], "private, max-age=5"),
        ([("Cache-Control", "max-age=5, private")], "max-age=5, private"),
        ([], "private"),
    ],
)
def test_cache_control_is_read_as_directives(headers: Headers, cache_control: str) -> None:
    response = make_app(headers, "subscriber to the class").get("/page")
    assert values(response, "Cache-Control") == [cache_control]


@pytest.mark.parametrize(
    ("vary", "expected"),
    [
        (["X-Cookie-Consent"], "X-Cookie-Consent, Cookie"),
        (["Accept", "Accept-Language"], "Accept, Accept-Language, Cookie"),
        (["accept, cookie"], "accept, cookie"),
        (["*"], "*"),
        (["Set-Cookie-Hint"], "Set-Cookie-Hint, Cookie"),
    ],
)
def test_vary_is_read_as_tokens(vary: list[str], expected: str) -> None:
    response = make_app([("Vary", v) for v in vary], "response callback").get("/page")
    assert values(response, "Vary") == [expected]


def test_cdn_headers_are_dropped_so_cdns_follow_cache_control() -> None:
    headers = [("CDN-Cache-Control", "max-age=600"), ("Surrogate-Control", "max-age=600")]
    response = make_app(headers, "subscriber to the interface").get("/page")
    assert values(response, "CDN-Cache-Control") == []
    assert values(response, "Surrogate-Control") == []
    assert values(response, "Cache-Control") == ["private"]


def test_a_response_that_never_read_the_session_is_left_alone() -> None:
    headers = [("Cache-Control", "public, max-age=60"), ("CDN-Cache-Control", "max-age=600")]
    response = make_app(headers, "view").get("/static")
    assert values(response, "Cache-Control") == ["public, max-age=60"]
    assert values(response, "CDN-Cache-Control") == ["max-age=600"]
    assert values(response, "Vary") == []
