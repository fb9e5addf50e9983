"""The application's own forbidden view wins wherever it is registered; ours otherwise."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from .conftest import HTTPS


def main_forbidden(request: Request) -> Response:
    return Response("the app's own forbidden page (main)", status=403)


def xhr_forbidden(request: Request) -> Response:
    return Response("xhr only", status=403)


Setup = Callable[[Configurator], None]

PLACEMENTS: dict[str, tuple[list[Setup], list[Setup], str]] = {
    # name: (before include("pyramid_jeff"), after it, the page the app expects)
    "main, before": ([lambda c: c.add_forbidden_view(main_forbidden)], [], "(main)"),
    "main, after": ([], [lambda c: c.add_forbidden_view(main_forbidden)], "(main)"),
    "included, before": ([lambda c: c.include("tests.forbidden.included")], [], "(included)"),
    "included, after": ([], [lambda c: c.include("tests.forbidden.included")], "(included)"),
    "scanned, before": ([lambda c: c.scan("tests.forbidden.scanned")], [], "(scanned)"),
    "scanned, after": ([], [lambda c: c.scan("tests.forbidden.scanned")], "(scanned)"),
}


def make_app(before: list[Setup], after: list[Setup], autocommit: bool = False) -> webtest.TestApp:
    config = Configurator(settings={"jeff.login_url": "/login"}, autocommit=autocommit)
    for setup in before:
        setup(config)
    config.include("pyramid_jeff")
    for setup in after:
        setup(config)
    config.add_route("private", "/private")
    config.add_view(lambda request: Response("secret"), route_name="private", permission="edit")
    return webtest.TestApp(config.make_wsgi_app(), extra_environ=dict(HTTPS))


@pytest.mark.parametrize("autocommit", [False, True], ids=["actions", "autocommit"])
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_the_apps_forbidden_view_wins(placement: str, autocommit: bool) -> None:
    before, after, page = PLACEMENTS[placement]
    app = make_app(before, after, autocommit)
    response = app.get("/private", status=403)
    assert page in response.text


def test_without_one_anonymous_requests_are_sent_to_log_in() -> None:
    response = make_app([], []).get("/private", status=303)
    assert response.headers["Location"] == "https://example.com/login?next=%2Fprivate"


def test_a_forbidden_view_with_predicates_leaves_ours_for_the_rest() -> None:
    register: Setup = lambda c: c.add_forbidden_view(xhr_forbidden, xhr=True)  # noqa: E731
    app = make_app([register], [])
    assert "/login?next=" in app.get("/private", status=303).headers["Location"]
    xhr = app.get("/private", headers={"X-Requested-With": "XMLHttpRequest"}, status=403)
    assert xhr.text == "xhr only"


def anonymous_forbidden(request: Request) -> Response:
    return Response("the app's own page for anonymous visitors", status=403)


def jeff_redirect(request: Request) -> Response:
    return Response("jeff.redirect", status=403)


@pytest.mark.parametrize("order", ["before", "after"])
def test_the_apps_anonymous_forbidden_view_wins_over_jeff_redirect(order: str) -> None:
    config = Configurator(settings={"jeff.redirect": jeff_redirect})
    if order == "before":
        config.add_forbidden_view(anonymous_forbidden, is_authenticated=False)
    config.include("pyramid_jeff")
    if order == "after":
        config.add_forbidden_view(anonymous_forbidden, is_authenticated=False)
    config.add_route("private", "/private")
    config.add_view(lambda request: Response("secret"), route_name="private", permission="edit")
    app = webtest.TestApp(config.make_wsgi_app(), extra_environ=dict(HTTPS))
    assert "for anonymous visitors" in app.get("/private", status=403).text


def test_jeff_redirect_answers_anonymous_requests() -> None:
    config = Configurator(settings={"jeff.redirect": jeff_redirect})
    config.include("pyramid_jeff")
    config.add_route("private", "/private")
    config.add_view(lambda request: Response("secret"), route_name="private", permission="edit")
    app = webtest.TestApp(config.make_wsgi_app(), extra_environ=dict(HTTPS))
    assert app.get("/private", status=403).text == "jeff.redirect"
