"""The forbidden view: anonymous requests sent to the login page (or ``jeff.redirect``), API
clients given 401, the logged-in given 403; an application's own forbidden view wins."""

from __future__ import annotations

import pytest
import webtest

from .conftest import AppFactory, ConfigFactory, JeffTestApp
from .helpers import fresh_client, memory_only

# Where a browser is sent does not depend on the store: on the memory store only.
pytestmark = memory_only


def test_forbidden_view(make_app: AppFactory) -> None:
    app = make_app(groupfinder="tests.app.groupfinder")
    response = app.get("/protected?page=2", status=303)
    assert response.location == "https://example.com/login?next=%2Fprotected%3Fpage%3D2"
    # API clients get 401 rather than an HTML redirect.
    app.get("/protected", headers={"X-Requested-With": "XMLHttpRequest"}, status=401)
    app.get("/protected", headers={"Accept": "application/json"}, status=401)
    app.get("/protected", headers={"Accept": "text/html,application/json;q=0.9"}, status=303)
    app.get("/protected", headers={"Accept": "*/*"}, status=303)
    # Logged in without the permission: 403, no redirect.
    app.login("bob@example.com")
    app.get("/admin", status=403)
    admin = fresh_client(app)
    admin.login("admin@example.com")
    assert admin.get("/admin").text == "admin area"


def test_a_forbidden_post_is_sent_to_login_without_next(app: JeffTestApp) -> None:
    response = app.post("/protected", status=303)
    assert response.location == "https://example.com/login"


def test_forbidden_login_page_is_403_not_a_loop(make_app: AppFactory) -> None:
    app = make_app(login_url="/protected")
    app.get("/protected", status=403)
    app.get("/admin", status=303)


def test_login_url_with_a_query_keeps_it(make_app: AppFactory) -> None:
    app = make_app(login_url="/login?source=jeff")
    response = app.get("/admin", status=303)
    assert response.location.endswith("/login?source=jeff&next=%2Fadmin")


def custom_redirect(request: object) -> object:
    from pyramid.httpexceptions import HTTPFound

    return HTTPFound(location="/custom-login")


def custom_redirect_with_context(context: object, request: object) -> object:
    from pyramid.response import Response

    return Response("please log in", status=401)


@pytest.mark.parametrize(
    ("view", "status"),
    [("custom_redirect", 302), ("custom_redirect_with_context", 401)],
)
def test_redirect_setting_replaces_the_anonymous_redirect(
    make_app: AppFactory, view: str, status: int
) -> None:
    app = make_app(redirect=f"tests.test_redirects.{view}")
    app.get("/protected", status=status)
    app.login("bob@example.com")
    app.get("/admin", status=403)  # authenticated requests keep the 403


def test_an_applications_own_forbidden_view_wins(
    make_config: ConfigFactory, store_url: str
) -> None:
    from pyramid.response import Response

    from .app import Root

    config = make_config(store=store_url, root_factory=Root)
    config.add_forbidden_view(lambda request: Response("ours", status=403))
    config.add_route("protected", "/protected")
    config.add_view(lambda request: Response("secret"), route_name="protected", permission="view")
    app = webtest.TestApp(config.make_wsgi_app())
    assert app.get("/protected", status=403).text == "ours"


def test_a_scheme_relative_path_is_never_put_in_next(
    make_config: ConfigFactory, store_url: str
) -> None:
    from pyramid.response import Response

    from .app import Root

    config = make_config(store=store_url, login_url="/login", root_factory=Root)
    config.add_route("anything", "/*rest")
    config.add_view(lambda request: Response("x"), route_name="anything", permission="view")
    app = webtest.TestApp(config.make_wsgi_app())
    response = app.get("//evil.example/x", status=303)
    assert response.location == "http://localhost/login"
    response = app.get("/fine/x?q=1", status=303)
    assert response.location == "http://localhost/login?next=%2Ffine%2Fx%3Fq%3D1"
