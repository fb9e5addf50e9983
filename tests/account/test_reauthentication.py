"""Re-authentication: ``jeff_recent_login`` sends an old login to confirm it."""

from __future__ import annotations

from typing import Any

import pytest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError

from .client import (
    ALICE,
    Clock,
    Factory,
    build_app,
    where,
)

# --- Re-authentication -----------------------------------------------------------------


def test_recent_login_sends_an_old_login_to_confirm_it(make_app: Factory) -> None:
    app = make_app()
    clock = Clock(app.manager)
    app.log_in()
    assert app.get("/password").text == "confirm your new password"
    clock.advance(301)
    res = app.get("/password?step=1", status=303)
    assert where(res) == (
        "/login",
        {"next": ["/password?step=1"], "jeff_reason": ["reauthenticate"]},
    )
    page = app.get("/login?next=/password&jeff_reason=reauthenticate").json
    assert page["reason"] == "reauthenticate"
    assert app.get("/home").text == f"home of {ALICE}"  # still logged in elsewhere
    # API clients get 401, a POST is redirected without next.
    app.get("/password", headers={"X-Requested-With": "XMLHttpRequest"}, status=401)
    res = app.post("/password", status=303)
    assert where(res) == ("/login", {"jeff_reason": ["reauthenticate"]})
    # A new login satisfies it.
    app.log_in()
    assert app.get("/password").text == "confirm your new password"


def test_recent_login_of_an_anonymous_request_is_the_usual_redirect() -> None:
    app = build_app("memory://")
    res = app.get("/password", status=303)
    assert where(res) == ("/login", {"next": ["/password"]})


def test_recent_login_wins_over_the_apps_own_forbidden_view() -> None:
    # The application's forbidden view sees an authenticated request and would answer
    # 403; a login too old for the view is sent to log in again all the same.
    from pyramid.httpexceptions import HTTPForbidden
    from pyramid.response import Response

    def own_forbidden(exc: HTTPForbidden, request: Any) -> Response:
        return Response("the app's own 403", status=403)

    def configure(config: Any) -> None:
        config.add_forbidden_view(own_forbidden)

    app = build_app("memory://", configure=configure)
    clock = Clock(app.manager)
    app.log_in()
    clock.advance(301)
    res = app.get("/password", status=303)
    assert where(res) == ("/login", {"next": ["/password"], "jeff_reason": ["reauthenticate"]})
    assert app.get("/nowhere-allowed", status=403).text == "the app's own 403"


def test_recent_login_goes_to_jeff_redirect_when_set() -> None:
    app = build_app("memory://", redirect="tests.account_app.custom_redirect")
    clock = Clock(app.manager)
    app.log_in()
    clock.advance(301)
    res = app.get("/password", status=302)
    assert res.headers["Location"] == "https://example.com/custom-login?why=reauthenticate"


@pytest.mark.parametrize("value", [0, -5, "300", 2.5, True])
def test_a_bad_recent_login_option_fails_at_start_up(config: Configurator, value: Any) -> None:
    config.add_route("x", "/x")
    config.add_view(lambda r: "x", route_name="x", renderer="string", jeff_recent_login=value)
    with pytest.raises(ConfigurationError, match="jeff_recent_login"):
        config.commit()
