"""``remember()`` as apps moving off ``AuthTktCookieHelper`` call it, and the
``is_authenticated`` view predicate."""

from __future__ import annotations

from typing import Any

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import remember

from pyramid_jeff.testing import jeff_policy

from .conftest import HTTPS, ConfigFactory
from .helpers import jeff_config, memory_only

DAY = 24 * 3600


def make_app(store_url: str, **settings: Any) -> webtest.TestApp:
    config = jeff_config({"jeff.store": store_url, **settings})

    def login(request: Request) -> Response:
        kw: dict[str, Any] = {}
        if "max_age" in request.params:
            kw["max_age"] = int(request.params["max_age"])
        if "remember_me" in request.params:
            kw["persistent"] = request.params["remember_me"] == "on"
        return HTTPSeeOther("/", headers=remember(request, "ann", **kw))

    def session(request: Request) -> dict[str, Any]:
        s = request.jeff_session
        return {"lifetime": (s.expires_ms - s.created_ms) // 1000}

    config.add_route("login", "/login")
    config.add_view(login, route_name="login")
    config.add_route("session", "/session")
    config.add_view(session, route_name="session", renderer="json")
    config.add_route("home", "/home")
    config.add_view(lambda r: Response("members"), route_name="home", is_authenticated=True)
    config.add_view(lambda r: Response("visitors"), route_name="home", is_authenticated=False)
    return webtest.TestApp(config.make_wsgi_app(), extra_environ=dict(HTTPS))


def cookie_attributes(response: webtest.TestResponse) -> dict[str, str]:
    (header,) = response.headers.getall("Set-Cookie")
    parts = [part.strip() for part in header.split(";")[1:]]
    attributes = {}
    for part in parts:
        name, _, value = part.partition("=")
        attributes[name] = value
    return attributes


def test_max_age_is_the_sessions_lifetime_and_the_cookies(store_url: str) -> None:
    app = make_app(store_url)
    response = app.get("/login", {"max_age": 3600}, status=303)
    assert cookie_attributes(response)["Max-Age"] == "3600"
    assert app.get("/session").json == {"lifetime": 3600}


def test_the_default_lifetime_is_jeff_max_age(store_url: str) -> None:
    app = make_app(store_url, **{"jeff.max_age": str(7 * DAY)})
    response = app.get("/login", status=303)
    assert cookie_attributes(response)["Max-Age"] == str(7 * DAY)
    assert app.get("/session").json == {"lifetime": 7 * DAY}


def test_remember_me_unticked_gives_a_browser_session_cookie(store_url: str) -> None:
    app = make_app(store_url, **{"jeff.max_age": str(DAY)})
    response = app.get("/login", {"remember_me": "off"}, status=303)
    attributes = cookie_attributes(response)
    assert "Max-Age" not in attributes and "Expires" not in attributes
    assert app.get("/session").json == {"lifetime": DAY}  # the server still ends it


def test_jeff_persistent_false_is_the_default_and_persistent_true_overrides(
    store_url: str,
) -> None:
    app = make_app(store_url, **{"jeff.persistent": "false"})
    assert "Max-Age" not in cookie_attributes(app.get("/login", status=303))
    ticked = app.get("/login", {"remember_me": "on"}, status=303)
    assert cookie_attributes(ticked)["Max-Age"] == str(30 * DAY)


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"max_age": 0}, ValueError),
        ({"max_age": 401 * DAY}, ValueError),
        ({"max_age": -5}, ValueError),
        ({"max_age": 1.5}, TypeError),
        ({"max_age": "3600"}, TypeError),
        ({"max_age": True}, TypeError),
        ({"persistent": "no"}, TypeError),
        ({"expires": 3600}, TypeError),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_stored(
    config: Configurator, kw: dict[str, Any], error: type[Exception]
) -> None:
    config.commit()
    request = Request.blank("/", base_url="https://example.com")
    request.registry = config.registry
    with pytest.raises(error):
        remember(request, "ann", **kw)
    manager = jeff_policy(config.registry).manager
    assert manager.sessions("ann") == []


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_a_bad_jeff_persistent_is_a_configuration_error(
    make_config: ConfigFactory, value: str
) -> None:
    config = make_config(persistent=value)
    with pytest.raises(ConfigurationError, match=r"jeff\.persistent"):
        config.commit()  # where Pyramid add-ons read their settings


@memory_only
def test_the_is_authenticated_view_predicate(store_url: str) -> None:
    app = make_app(store_url)
    assert app.get("/home").text == "visitors"
    app.get("/login", status=303)
    assert app.get("/home").text == "members"
