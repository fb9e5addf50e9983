"""Bearer credentials: verified like the cookie, anonymous when malformed, free of CSRF."""

from __future__ import annotations

import pytest
import webtest

from ..helpers import memory_only
from .client import (
    ALICE,
    BOB,
    HTTPS,
    Factory,
    api_token,
    bearer,
    build_app,
    cookie_header,
    counting_app,
    ended,
    where,
)

# --- Bearer credentials ----------------------------------------------------------------


def test_a_bearer_credential_is_verified_like_the_cookie(make_app: Factory) -> None:
    app = make_app(bearer="true")
    token = api_token(app)
    client = app.browser()
    assert client.get("/home", headers=bearer(token)).text == f"home of {ALICE}"
    assert client.get("/home", headers={"Authorization": f"bearer  {token}"}).status_int == 200
    app.manager.revoke_all(ALICE)
    # An API client is told so as RFC 6750 says, never sent to an HTML login page.
    res = client.get("/home", headers=bearer(token), status=401)
    assert res.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert "Set-Cookie" not in res.headers  # no cookie to expire


def test_bearer_is_off_by_default() -> None:
    app = build_app("memory://")
    token = api_token(app)
    app.browser().get("/home", headers=bearer(token), status=303)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer ",
        "Bearer not-a-credential",
        "Bearer {token}, Bearer {token}",  # two headers, as a WSGI server joins them
        "Bearer {token}" + "A" * 300,
        "Bearer {token} extra",
        "Basic {token}",
        "Bearer\t{token}",
    ],
)
def test_malformed_bearer_headers_are_anonymous_without_a_store_call(header: str) -> None:
    app, store, wsgi = counting_app(bearer="true")
    token = app.post_json("/api/login", {"key": ALICE}).json["token"]
    store.reset()
    other = webtest.TestApp(wsgi, extra_environ=dict(HTTPS))
    sent = header.format(token=token)
    expected = 401 if sent.startswith("Bearer ") else 303  # else not ours: the usual redirect
    other.get("/home", headers={"Authorization": sent}, status=expected)
    assert store.calls == {}


@memory_only
def test_a_cookie_and_a_bearer_credential_together_are_refused(make_app: Factory) -> None:
    app = make_app(bearer="true")
    token = api_token(app, BOB)
    app.log_in()  # this browser now also holds a cookie
    assert app.get("/home").text == f"home of {ALICE}"
    res = app.get("/home", headers=bearer(token), status=401)
    assert "Max-Age=0" not in res.headers.get("Set-Cookie", "")  # the cookie is left alone


@memory_only
def test_bearer_requests_need_no_csrf_token_cookie_requests_do(make_app: Factory) -> None:
    app = make_app(bearer="true", csrf="true", require_csrf=True)
    _, credential = app.manager.create(BOB)
    client = app.browser()
    res = client.post("/password", headers=bearer(credential.encode()), status=303)
    assert where(res)[0] == "/home"  # no CSRF token, no Origin: accepted
    cookie = cookie_header(app.manager.create(ALICE)[1].encode())
    app.browser().post("/password", headers=cookie, status=400)  # ambient authority: refused
    app.browser().post("/login", {"key": ALICE}, status=400)  # so is an anonymous POST


def test_a_bearer_logout_ends_its_session(make_app: Factory) -> None:
    app = make_app(bearer="true")
    token = api_token(app)
    client = app.browser()
    client.post("/logout", headers=bearer(token), status=303)
    assert app.manager.sessions(ALICE) == []
    assert ended("logout")
