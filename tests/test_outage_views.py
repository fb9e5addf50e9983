"""An application's own page for a store outage, and what happens when it fails too."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import remember

from pyramid_jeff import StoreUnavailable, store_unavailable_view
from pyramid_jeff.testing import jeff_policy

from .conftest import HTTPS


def failing_login(request: Request) -> Response:
    """A login whose next step finds the store gone."""
    remember(request, "bob")
    raise StoreUnavailable("redis: TimeoutError: (simulated)")


def own_page(exc: StoreUnavailable, request: Request) -> Response:
    response = store_unavailable_view(exc, request)
    response.text = "our own outage page"
    return response


def page_failing_in_turn(exc: StoreUnavailable, request: Request) -> Response:
    """A layout that shows who is signed in asks the store again, and fails again."""
    raise StoreUnavailable("redis: TimeoutError: (simulated, again)")


def make_app(outage_view: Any) -> webtest.TestApp:
    config = Configurator(settings={"jeff.cookie_secure": "false"})
    config.include("pyramid_jeff")
    if outage_view is not None:
        config.add_exception_view(outage_view, context=StoreUnavailable)
    config.add_route("login", "/login")
    config.add_view(failing_login, route_name="login")
    return webtest.TestApp(config.make_wsgi_app(), extra_environ=dict(HTTPS))


@pytest.mark.parametrize("outage_view", [None, own_page], ids=["ours", "the app's"])
def test_the_outage_page_is_a_503_with_a_log_line_and_no_cookie(
    outage_view: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(outage_view)
    with caplog.at_level(logging.ERROR, logger="pyramid_jeff"):
        response = app.get("/login", status=503)
    assert response.headers["Retry-After"] == "5"
    assert "Set-Cookie" not in response.headers
    assert [r.name for r in caplog.records] == ["pyramid_jeff.tween"]
    if outage_view is own_page:
        assert response.text == "our own outage page"
    # Whose cookie never went out: the login is undone.
    assert jeff_policy(app.app.registry).manager.sessions("bob") == []


def test_an_outage_page_that_fails_in_turn_gives_way_to_ours(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(page_failing_in_turn)
    with caplog.at_level(logging.ERROR, logger="pyramid_jeff"):
        response = app.get("/login", status=503)  # not an exception out of the app
    assert response.headers["Retry-After"] == "5"
    assert "Set-Cookie" not in response.headers
    assert [r.name for r in caplog.records] == ["pyramid_jeff.tween"]
    # The login made before the outage, whose cookie never went out, is undone.
    assert jeff_policy(app.app.registry).manager.sessions("bob") == []
