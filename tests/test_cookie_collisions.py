"""Other cookies, and other copies of ours, never get the genuine login deleted.

A sibling subdomain can set cookies for the parent domain: enough of them swell the
``Cookie`` header (a "cookie bomb"), and outside ``__Host-`` it can toss a copy of ours
with another Domain or Path. Neither may make us expire the browser's real cookie.
"""

from __future__ import annotations

from typing import Any

from .conftest import JeffTestApp
from .helpers import cookie_value, memory_only, set_cookies

COOKIE = "__Host-jeff"
BOMB = "; ".join(f"sibling{i}={'b' * 4000}" for i in range(12))  # 48 KB of other cookies


def login_cookie(app: JeffTestApp, key: str = "bob@example.com") -> str:
    app.reset()
    (header,) = set_cookies(app.login(key))
    return cookie_value(header)


def send(app: JeffTestApp, header: str, path: str = "/public", **kw: Any) -> Any:
    app.reset()
    return app.get(path, extra_environ={"HTTP_COOKIE": header}, status="*", **kw)


@memory_only
def test_a_cookie_bomb_neither_logs_out_nor_expires_the_cookie(app: JeffTestApp) -> None:
    value = login_cookie(app)
    for header in (f"{BOMB}; {COOKIE}={value}", f"{COOKIE}={value}; {BOMB}"):
        assert len(header) > 16384
        response = send(app, header)
        assert response.text == "hello bob@example.com"
        assert set_cookies(response) == []
    assert send(app, f"{COOKIE}={value}").text == "hello bob@example.com"


@memory_only
def test_a_header_beyond_the_limit_is_anonymous_but_expires_nothing(app: JeffTestApp) -> None:
    value = login_cookie(app)
    huge = "; ".join(f"sibling{i}={'b' * 4000}" for i in range(70))  # > 256 KiB
    response = send(app, f"{huge}; {COOKIE}={value}")
    assert response.text == "anonymous"
    assert set_cookies(response) == []
    assert send(app, f"{COOKIE}={value}").text == "hello bob@example.com"


@memory_only
def test_a_tossed_copy_of_our_cookie_is_anonymous_and_expires_nothing(
    app: JeffTestApp,
) -> None:
    value = login_cookie(app)
    for tossed in ("junk", "x" * 89, value[:-1] + ("A" if value[-1] != "A" else "B")):
        for header in (
            f"{COOKIE}={tossed}; {COOKIE}={value}",
            f"{COOKIE}={value}; {COOKIE}={tossed}",
        ):
            response = send(app, header)
            assert response.text == "anonymous"
            assert set_cookies(response) == []  # the genuine one may be either copy
    assert send(app, f"{COOKIE}={value}").text == "hello bob@example.com"


@memory_only
def test_a_single_malformed_cookie_is_anonymous_and_left_alone(app: JeffTestApp) -> None:
    response = send(app, f"{COOKIE}=not-one-of-ours")
    assert response.text == "anonymous"
    assert set_cookies(response) == []


def test_logout_with_two_copies_ends_both_sessions(app: JeffTestApp) -> None:
    first = login_cookie(app)
    second = login_cookie(app)
    assert len(app.manager.sessions("bob@example.com")) == 2
    app.reset()
    response = app.post(
        "/logout", extra_environ={"HTTP_COOKIE": f"{COOKIE}={first}; {COOKIE}={second}"}
    )
    assert response.status_int == 303
    assert app.manager.sessions("bob@example.com") == []


def test_login_with_two_copies_ends_both_and_keeps_one(app: JeffTestApp) -> None:
    first = login_cookie(app)
    second = login_cookie(app, "alice@example.com")
    app.reset()
    response = app.post(
        "/login",
        {"key": "bob@example.com"},
        extra_environ={"HTTP_COOKIE": f"{COOKIE}={first}; {COOKIE}={second}"},
    )
    assert response.status_int == 303
    (session,) = app.manager.sessions("bob@example.com")
    assert app.manager.sessions("alice@example.com") == []
    assert cookie_value(set_cookies(response)[0]).split(".")[1] == session.id
