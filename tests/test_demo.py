"""Functional tests of the demo application (demo/pyramid_jeff_demo/), black-box through WebTest.

Each TestApp is one browser with its own cookie jar; several of them on one app are several
devices of the same user.
"""

from __future__ import annotations

import configparser
import hashlib
import logging
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import waitress
import webtest
from pyramid.interfaces import ISecurityPolicy
from pyramid.router import Router

import pyramid_jeff.views
import pyramid_jeff_demo
import pyramid_jeff_demo.security
from pyramid_jeff import StoreUnavailable
from pyramid_jeff.events import EveryoneRevoked, SessionEnded
from pyramid_jeff_demo.audit import AuditTrail, audit_trail
from pyramid_jeff_demo.security import DEMO_PASSWORD, USERS
from pyramid_jeff_demo.serve import server
from pyramid_jeff_demo.views.account import LOGIN_REASONS as LOGIN_MESSAGES

from .conftest import clean_store_url

ALICE = "alice@example.com"  # admin
BOB = "bob@example.com"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
Browser = Callable[..., webtest.TestApp]
# What the login page says after a form was sent from a page of a session that had ended.
STALE_FORM = "Your session had ended, so that form changed nothing. Please sign in again."


DemoFactory = Callable[..., Router]


# development.ini keeps sessions in SQLite, redis.ini in Redis. PostgreSQL and MariaDB (a new
# database per test) would add a minute and behave here as SQLite does: the store contract
# tests cover them.
DEMO_STORES = ("memory", "redis", "memcached", "sqlite")


@pytest.fixture(params=DEMO_STORES)
def demo_store_url(request: pytest.FixtureRequest) -> str:
    return clean_store_url(request, request.param)


@pytest.fixture
def make_demo(demo_store_url: str) -> DemoFactory:
    """``make_demo(**settings)``: the demo as development.ini builds it, on each store, with
    these ``jeff.*`` settings besides.

    ``jeff.cookie_secure = false``: WebTest speaks plain http, like the development server.
    """

    def make(**settings: str) -> Router:
        return pyramid_jeff_demo.main(
            {}, **{"jeff.store": demo_store_url, "jeff.cookie_secure": "false", **settings}
        )

    return make


@pytest.fixture
def demo_app(make_demo: DemoFactory) -> Router:
    return make_demo()


def browsers(app: Router) -> Browser:
    """A factory of browsers (cookie jars) on one running demo."""

    def make(user_agent: str = FIREFOX, ip: str = "192.0.2.10") -> webtest.TestApp:
        return webtest.TestApp(
            app, extra_environ={"HTTP_USER_AGENT": user_agent, "REMOTE_ADDR": ip}
        )

    return make


@pytest.fixture
def browser(demo_app: Router) -> Browser:
    return browsers(demo_app)


class Clock:
    """The demo's session clock, moved forward: sessions age without the test waiting."""

    def __init__(self, app: Router, monkeypatch: pytest.MonkeyPatch) -> None:
        manager = app.registry.getUtility(ISecurityPolicy).manager
        real = manager.clock
        self.offset_ms = 0
        monkeypatch.setattr(manager, "clock", lambda: real() + self.offset_ms)

    def advance(self, seconds: int) -> None:
        self.offset_ms += seconds * 1000


@pytest.fixture
def restore_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that changes a password gives the demo users theirs back afterwards."""
    for email, user in list(USERS.items()):
        monkeypatch.setitem(USERS, email, user)


def csrf_token(page: webtest.TestResponse) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(
    client: webtest.TestApp, email: str, password: str = DEMO_PASSWORD, next: str | None = None
) -> webtest.TestResponse:
    page = client.get("/login" + (f"?next={quote(next, safe='')}" if next else ""))
    form = page.forms["login-form"]
    form["email"] = email
    form["password"] = password
    return form.submit()


def logged_in(client: webtest.TestApp, email: str) -> webtest.TestApp:
    res = login(client, email)
    assert res.status_int == 303, res
    return client


def location(res: webtest.TestResponse) -> tuple[str, dict[str, list[str]]]:
    """(path, query) of a redirect; the host must be this site."""
    parts = urlsplit(res.headers["Location"])
    assert parts.netloc in ("", "localhost", "localhost:80"), res.headers["Location"]
    return parts.path, parse_qs(parts.query)


def session_cookie(res: webtest.TestResponse) -> str:
    cookies: list[str] = [v for v in res.headers.getall("Set-Cookie") if v.startswith("jeff=")]
    assert len(cookies) == 1, res.headers.getall("Set-Cookie")
    return cookies[0]


def device_ids(page: webtest.TestResponse) -> list[str]:
    return re.findall(r'data-session-id="([^"]+)"', page.text)


def reason_shown(page: webtest.TestResponse) -> tuple[str, str] | None:
    """(reason, text) of the "why you are here" message of a login page, if any."""
    match = re.search(
        r'<p class="reason" role="status" data-reason="([^"]*)">([^<]*)</p>', page.text
    )
    return (match.group(1), match.group(2)) if match else None


def sent_to_login(
    res: webtest.TestResponse, reason: str | None, next: str | None = "/users"
) -> webtest.TestResponse:
    """``res`` redirects to the login page with this ``next`` and ``jeff_reason``, and that
    page (returned) says why."""
    assert res.status_int == 303, res
    query = {"next": [next]} if next else {}
    if reason is not None:
        query["jeff_reason"] = [reason]
    assert location(res) == ("/login", query)
    page = res.follow()
    if reason is None:
        assert reason_shown(page) is None
    else:
        assert reason_shown(page) == (reason, LOGIN_MESSAGES[reason])
    return page


def this_session_id(client: webtest.TestApp) -> str:
    """The public id of the session this browser holds, from its devices page."""
    page = client.get("/sessions")
    match = re.search(r'class="device this-device" data-session-id="([^"]+)"', page.text)
    assert match, "not logged in"
    return match.group(1)


def audit_entries(page: webtest.TestResponse) -> list[tuple[str, str, str, str]]:
    """(event, key, session id, reason) of each row of the admin page's audit trail."""
    entries = []
    for event, reason, cells in re.findall(
        r'<tr class="audit-entry" data-event="([^"]*)" data-reason="([^"]*)">(.*?)</tr>',
        page.text,
        re.DOTALL,
    ):
        key = re.search(r'<td data-label="User"><code>([^<]*)</code></td>', cells)
        session_id = re.search(r'<code class="sid">([^<]*)</code>', cells)
        entries.append(
            (event, key.group(1) if key else "", session_id.group(1) if session_id else "", reason)
        )
    return entries


def jeff_cookies(res: webtest.TestResponse) -> list[str]:
    return [c for c in res.headers.getall("Set-Cookie") if c.startswith("jeff=")]


def refused(
    res: webtest.TestResponse, query: dict[str, list[str]] | None = None
) -> webtest.TestResponse:
    """A refused login: redirected back to the login page (Post/Redirect/Get) with this
    query and no session cookie; that page, followed."""
    assert res.status_int == 303, res
    assert location(res) == ("/login", query or {})
    assert not jeff_cookies(res)
    return res.follow()


def error_shown(page: webtest.TestResponse) -> str | None:
    match = re.search(r'<p class="error" role="alert">([^<]*)</p>', page.text)
    return match.group(1) if match else None


# --- public pages and the login page ---------------------------------------------------------


def test_public_pages_need_no_login_and_set_no_session_cookie(browser: Browser) -> None:
    client = browser()
    for path in ("/", "/products", "/static/demo.css"):
        res = client.get(path)
        assert res.status_int == 200
        assert not [c for c in res.headers.getall("Set-Cookie") if c.startswith("jeff=")]
    assert "browsing anonymously" in client.get("/products").text


def test_login_page_documents_the_demo_users(browser: Browser) -> None:
    page = browser().get("/login")
    assert ALICE in page.text and BOB in page.text
    assert f'<code class="pw">{DEMO_PASSWORD}</code>' in page.text


def test_security_headers(browser: Browser) -> None:
    res = browser().get("/login")
    assert "frame-ancestors 'none'" in res.headers["Content-Security-Policy"]
    assert res.headers["X-Content-Type-Options"] == "nosniff"


# --- logging in and out ----------------------------------------------------------------------


def test_anonymous_is_sent_to_login_and_brought_back(browser: Browser) -> None:
    client = browser()
    res = client.get("/users")
    assert res.status_int == 303
    assert location(res) == ("/login", {"next": ["/users"]})
    page = res.follow()
    assert 'name="next" value="/users"' in page.text
    form = page.forms["login-form"]
    form["email"], form["password"] = BOB, DEMO_PASSWORD
    res = form.submit()
    assert res.status_int == 303
    assert location(res) == ("/users", {})
    assert "Hello, Bob Builder" in res.follow().text


def test_login_sets_a_httponly_lax_cookie_without_the_email(browser: Browser) -> None:
    res = login(browser(), ALICE)
    cookie = session_cookie(res)
    attributes = [a.strip().lower() for a in cookie.split(";")]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert "alice" not in cookie and "example" not in cookie


def test_wrong_password_is_refused(browser: Browser) -> None:
    client = browser()
    res = login(client, ALICE, password="not-the-password")
    assert error_shown(refused(res)) == "Wrong email or password."
    assert client.get("/users").status_int == 303
    assert error_shown(refused(login(client, "nobody@example.com"))) == "Wrong email or password."


def test_a_refused_login_redirects_keeping_the_email_not_the_password(browser: Browser) -> None:
    client = browser()
    res = login(client, "Bob@example.com ", password="not-the-password", next="/sessions")
    # The answer to the POST is a redirect: Back or reload never offers to resend the form.
    page = refused(res, {"next": ["/sessions"]})
    assert error_shown(page) == "Wrong email or password."
    assert re.search(r'<input id="email" [^>]*value="Bob@example.com "', page.text)
    assert "not-the-password" not in page.text
    assert 'name="next" value="/sessions"' in page.text
    assert "not-the-password" not in "".join(res.headers.getall("Set-Cookie"))
    # Shown once: the page again is a fresh form.
    again = client.get(res.headers["Location"])
    assert error_shown(again) is None
    assert re.search(r'<input id="email" [^>]*value=""', again.text)
    form = page.forms["login-form"]
    form["password"] = DEMO_PASSWORD
    assert location(form.submit()) == ("/sessions", {})


def test_email_is_case_insensitive(browser: Browser) -> None:
    assert login(browser(), "Alice@Example.COM ").status_int == 303


def test_products_shows_who_is_signed_in(browser: Browser) -> None:
    client = logged_in(browser(), ALICE)
    page = client.get("/products")
    assert "Signed in as" in page.text and ALICE in page.text


@pytest.mark.parametrize(
    "evil",
    [
        "https://evil.example/",
        "//evil.example/path",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "/%2F%2Fevil.example",
        " /\t/evil.example",
    ],
)
def test_login_never_redirects_off_site(browser: Browser, evil: str) -> None:
    client = browser()
    page = client.get(f"/login?next={quote(evil, safe='')}")
    assert 'name="next" value=""' in page.text  # not even carried on by the form
    res = login(client, BOB, next=evil)
    assert location(res) == ("/", {})
    # A forged POST (the hidden field edited) is checked again.
    token = csrf_token(client.get("/login"))
    res = client.post(
        "/login", {"email": BOB, "password": DEMO_PASSWORD, "next": evil, "csrf_token": token}
    )
    assert res.status_int == 303
    assert location(res) == ("/", {})


def test_logout(browser: Browser) -> None:
    client = logged_in(browser(), BOB)
    page = client.get("/products")
    res = client.post("/logout", {"csrf_token": csrf_token(page)})
    assert res.status_int == 303
    assert location(res) == ("/login", {})
    assert "max-age=0" in session_cookie(res).lower()
    assert "You are signed out." in res.follow().text
    assert "You are signed out." not in client.get("/login").text  # shown once
    assert client.get("/users").status_int == 303


def test_logout_is_not_a_get(browser: Browser) -> None:
    client = logged_in(browser(), BOB)
    client.get("/logout", status=404)
    assert client.get("/users").status_int == 200


# --- CSRF, black box -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, params",
    [
        ("/logout", {}),
        ("/sessions/revoke", {"session_id": "x"}),
        ("/sessions/revoke-others", {}),
        ("/admin/revoke", {"email": BOB}),
        ("/admin/revoke-session", {"email": BOB, "session_id": "x"}),
        ("/admin/sign-out-everyone", {}),
        ("/account/password", {"current_password": DEMO_PASSWORD, "new_password": "x" * 20}),
    ],
)
def test_every_post_without_a_token_is_refused(
    browser: Browser, path: str, params: dict[str, str]
) -> None:
    client, bob = logged_in(browser(), ALICE), logged_in(browser(PHONE), BOB)
    before = device_ids(client.get("/sessions"))
    res = client.post(path, params, status=400)
    assert "This form has expired" in res.text
    # Nothing happened: the same session here, and bob still logged in.
    assert device_ids(client.get("/sessions")) == before
    assert bob.get("/users").status_int == 200


def test_login_itself_needs_the_token(browser: Browser) -> None:
    # Login CSRF: a foreign site must not log a visitor in as the attacker. The browser
    # is simply sent to the login page, told that the form changed nothing.
    client = browser()
    res = client.post("/login", {"email": BOB, "password": DEMO_PASSWORD})
    assert location(res) == ("/login", {})
    assert not jeff_cookies(res)
    assert STALE_FORM in res.follow().text
    assert client.get("/users").status_int == 303


def test_stale_token_after_relogin_is_refused(browser: Browser) -> None:
    mine, other = logged_in(browser(), BOB), logged_in(browser(PHONE), BOB)
    stale = csrf_token(mine.get("/sessions"))
    logged_in(mine, BOB)  # a new login session: a new token
    fresh = csrf_token(mine.get("/sessions"))
    assert fresh != stale
    mine.post("/sessions/revoke-others", {"csrf_token": stale}, status=400)
    assert other.get("/users").status_int == 200  # the stale POST changed nothing
    res = mine.post("/sessions/revoke-others", {"csrf_token": fresh})
    assert res.status_int == 303
    assert other.get("/users").status_int == 303


def test_token_of_another_session_is_refused(browser: Browser) -> None:
    alice, bob = logged_in(browser(), ALICE), logged_in(browser(), BOB)
    bobs_token = csrf_token(bob.get("/sessions"))
    alice.post("/admin/revoke", {"email": BOB, "csrf_token": bobs_token}, status=400)
    assert bob.get("/users").status_int == 200


def test_right_token_in_the_header_passes(browser: Browser) -> None:
    client = logged_in(browser(), BOB)
    token = csrf_token(client.get("/sessions"))
    res = client.post("/sessions/revoke-others", headers={"X-CSRF-Token": token})
    assert res.status_int == 303


def test_anonymous_token_changes_at_login(browser: Browser) -> None:
    client = browser()
    anonymous = csrf_token(client.get("/login"))
    logged_in(client, BOB)
    assert csrf_token(client.get("/sessions")) != anonymous
    client.post("/logout", {"csrf_token": anonymous}, status=400)


# --- your devices ----------------------------------------------------------------------------


def test_devices_lists_every_session_and_marks_this_one(browser: Browser) -> None:
    laptop = logged_in(browser(FIREFOX, "192.0.2.10"), BOB)
    logged_in(browser(PHONE, "198.51.100.7"), BOB)
    logged_in(browser(), ALICE)  # someone else's session is not listed
    page = laptop.get("/sessions")
    assert len(device_ids(page)) == 2
    assert page.text.count("this device</span>") == 1
    assert "Firefox on Linux" in page.text and "Chrome on Android" in page.text
    assert "192.0.2.10" in page.text and "198.51.100.7" in page.text
    this_row = page.text.split('class="device this-device"')[1].split("</tr>")[0]
    assert "Firefox on Linux" in this_row
    assert "UTC" in this_row  # created / last seen


def test_end_one_device(browser: Browser) -> None:
    laptop = logged_in(browser(FIREFOX), BOB)
    phone = logged_in(browser(PHONE), BOB)
    page = laptop.get("/sessions")
    phone_id = page.text.split('class="device"')[1].split('data-session-id="')[1].split('"')[0]
    res = laptop.post("/sessions/revoke", {"session_id": phone_id, "csrf_token": csrf_token(page)})
    assert location(res) == ("/sessions", {})
    assert "That device is signed out." in res.follow().text
    # The phone is out on its very next request, told why, and told to forget its cookie.
    res = phone.get("/users")
    assert "max-age=0" in session_cookie(res).lower()
    sent_to_login(res, "revoked")
    assert laptop.get("/users").status_int == 200
    assert len(device_ids(laptop.get("/sessions"))) == 1


def test_ending_this_device_is_logging_out(browser: Browser) -> None:
    client = logged_in(browser(), BOB)
    page = client.get("/sessions")
    [mine] = device_ids(page)
    res = client.post("/sessions/revoke", {"session_id": mine, "csrf_token": csrf_token(page)})
    assert location(res) == ("/login", {})
    assert "max-age=0" in session_cookie(res).lower()
    assert "You are signed out." in res.follow().text
    assert client.get("/users").status_int == 303


def test_cannot_end_a_session_of_another_user(browser: Browser) -> None:
    alice, bob = logged_in(browser(), ALICE), logged_in(browser(), BOB)
    [alices] = device_ids(alice.get("/sessions"))
    page = bob.get("/sessions")
    res = bob.post("/sessions/revoke", {"session_id": alices, "csrf_token": csrf_token(page)})
    assert location(res) == ("/sessions", {})
    assert "That session had already ended." in res.follow().text
    assert alice.get("/users").status_int == 200


@pytest.mark.parametrize("junk", ["", "nope", "x" * 5000, "é\u0000", "../../etc"])
def test_junk_session_id_is_harmless(browser: Browser, junk: str) -> None:
    client = logged_in(browser(), BOB)
    page = client.get("/sessions")
    res = client.post("/sessions/revoke", {"session_id": junk, "csrf_token": csrf_token(page)})
    assert res.status_int == 303
    assert client.get("/users").status_int == 200


def test_log_out_everywhere_else(browser: Browser) -> None:
    here = logged_in(browser(), BOB)
    others = [logged_in(browser(PHONE), BOB) for _ in range(3)]
    page = here.get("/sessions")
    res = here.post("/sessions/revoke-others", {"csrf_token": csrf_token(page)})
    assert location(res) == ("/sessions", {})
    assert "Signed out 3 other device(s)." in res.follow().text
    for other in others:
        sent_to_login(other.get("/users"), "revoked")
    assert here.get("/users").status_int == 200


def test_a_revoked_browser_logging_out_goes_to_login_not_an_error(browser: Browser) -> None:
    laptop, phone = logged_in(browser(), BOB), logged_in(browser(PHONE), BOB)
    stale_page = phone.get("/products")  # its logout form holds its session's token
    page = laptop.get("/sessions")
    laptop.post("/sessions/revoke-others", {"csrf_token": csrf_token(page)})
    res = phone.post("/logout", {"csrf_token": csrf_token(stale_page)})
    page = sent_to_login(res, "revoked", next=None)
    assert STALE_FORM in page.text


def test_a_form_from_before_logging_out_says_why_it_did_nothing(browser: Browser) -> None:
    # "Log out everywhere else" from a tab opened before this browser logged out.
    laptop, phone = logged_in(browser(), BOB), logged_in(browser(PHONE), BOB)
    old_tab = laptop.get("/sessions")
    laptop.post("/logout", {"csrf_token": csrf_token(laptop.get("/products"))})
    res = laptop.post("/sessions/revoke-others", {"csrf_token": csrf_token(old_tab)})
    page = sent_to_login(res, None, next=None)
    assert f'<p class="notice" role="status">{STALE_FORM}</p>' in page.text
    assert phone.get("/users").status_int == 200  # nothing was changed
    # A client that asked for JSON still gets pyramid_jeff's 401, not a page.
    laptop.post(
        "/sessions/revoke-others",
        {"csrf_token": csrf_token(old_tab)},
        headers={"Accept": "application/json"},
        status=401,
    )


# --- admin -----------------------------------------------------------------------------------


def test_admin_permissions(browser: Browser) -> None:
    res = browser().get("/admin")
    assert res.status_int == 303
    assert res.headers["Location"].endswith("/login?next=%2Fadmin")
    logged_in(browser(), BOB).get("/admin", status=403)
    page = logged_in(browser(), ALICE).get("/admin")
    assert page.status_int == 200 and "End all sessions" in page.text


def test_admin_json_client_gets_401_not_a_redirect(browser: Browser) -> None:
    browser().get("/admin", headers={"Accept": "application/json"}, status=401)


def test_bob_cannot_use_the_admin_form(browser: Browser) -> None:
    alice, bob = logged_in(browser(), ALICE), logged_in(browser(), BOB)
    token = csrf_token(bob.get("/sessions"))
    bob.post("/admin/revoke", {"email": ALICE, "csrf_token": token}, status=403)
    assert alice.get("/admin").status_int == 200


def test_admin_ends_all_sessions_of_a_user(browser: Browser) -> None:
    alice = logged_in(browser(), ALICE)
    bobs = [logged_in(browser(), BOB), logged_in(browser(PHONE), BOB)]
    page = alice.get("/admin")
    row = page.text.split(f'data-email="{BOB}"')[1].split("</tr>")[0]
    assert '<td class="count" data-label="Live sessions">2</td>' in row
    res = alice.post("/admin/revoke", {"email": BOB, "csrf_token": csrf_token(page)})
    assert location(res) == ("/admin", {"email": [BOB]})
    assert f"Ended 2 session(s) of {BOB}." in res.follow().text
    for bob in bobs:
        sent_to_login(bob.get("/users"), "revoked")
    assert alice.get("/admin").status_int == 200


@pytest.mark.parametrize(
    "query",
    [
        "notice=ended-all&n=9&user=%3Cscript%3Ex%3C/script%3E",
        "notice=ended-others&n=999",
        "notice=ended-others&n=%C2%B2",
        "notice=signed-out",
        "notice=You+won+a+prize",
        "kind=ended-others&n=5",
    ],
)
def test_notices_cannot_be_forged_from_a_url(browser: Browser, query: str) -> None:
    client = logged_in(browser(), ALICE)
    for path in ("/admin", "/sessions", "/login"):
        page = client.get(f"{path}?{query}")
        assert page.status_int == 200
        assert 'class="notice"' not in page.text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("kind=ended-others&n=%C2%B2", "Signed out 0 other device(s)."),  # not a digit
        ("kind=ended-all&n=1&user=%3Cscript%3E", "Ended 1 session(s) of that user."),
        ("kind=nope", None),
        ("%%%", None),
        ("n=1", None),
    ],
)
def test_a_tampered_notice_cookie_is_harmless(
    browser: Browser, value: str, shown: str | None
) -> None:
    client = logged_in(browser(), ALICE)
    client.set_cookie("demo_notice", value)
    page = client.get("/sessions")
    assert page.status_int == 200
    if shown is None:
        assert 'class="notice"' not in page.text
    else:
        assert f'class="notice" role="status">{shown}</p>' in page.text


def test_a_deleted_account_is_logged_out_everywhere(
    browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    # jeff.identity_loader returns None for a user that no longer exists: anonymous at once.
    client = logged_in(browser(), BOB)
    monkeypatch.delitem(pyramid_jeff_demo.security.USERS, BOB)
    assert client.get("/users").status_int == 303
    assert "browsing anonymously" in client.get("/products").text


# --- why the login page is shown (request.jeff_login_reason) ---------------------------------


def test_login_page_says_the_session_expired(
    make_demo: DemoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_demo(**{"jeff.max_age": "600"})
    clock = Clock(app, monkeypatch)
    client = logged_in(browsers(app)(), BOB)
    clock.advance(599)
    assert client.get("/users").status_int == 200
    clock.advance(2)
    sent_to_login(client.get("/users"), "expired")


def test_login_page_says_the_session_went_idle(
    make_demo: DemoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_demo(**{"jeff.idle_timeout": "600"})
    clock = Clock(app, monkeypatch)
    client = logged_in(browsers(app)(), BOB)
    for _ in range(3):  # active: each request keeps the session alive
        clock.advance(599)
        assert client.get("/users").status_int == 200
    clock.advance(601)
    sent_to_login(client.get("/users"), "idle")


def test_login_page_says_the_session_was_evicted(make_demo: DemoFactory) -> None:
    browser = browsers(make_demo(**{"jeff.max_sessions": "2"}))
    oldest = logged_in(browser(), BOB)
    newer = [logged_in(browser(PHONE), BOB) for _ in range(2)]
    sent_to_login(oldest.get("/users"), "evicted")
    assert all(b.get("/users").status_int == 200 for b in newer)


def test_login_page_says_the_session_ended(browser: Browser) -> None:
    # A copy of the cookie (a restored browser profile, say) whose session was logged out.
    first = logged_in(browser(), BOB)
    copy = {"Cookie": f"jeff={first.cookies['jeff']}"}
    assert browser().get("/users", headers=copy).status_int == 200
    first.post("/logout", {"csrf_token": csrf_token(first.get("/products"))})
    sent_to_login(browser().get("/users", headers=copy), "ended")


def test_every_reason_pyramid_jeff_gives_has_a_message() -> None:
    assert set(LOGIN_MESSAGES) == set(pyramid_jeff.views.LOGIN_REASONS)
    assert LOGIN_MESSAGES["revoked"] == (
        "You were signed out from another device or by an administrator."
    )


def test_a_reason_comes_only_from_the_fixed_list(browser: Browser) -> None:
    client = browser()
    for value in ("%3Cscript%3E", "REVOKED", "reauthenticate2", "", "revoked&jeff_reason=x"):
        page = client.get(f"/login?jeff_reason={value}")
        assert reason_shown(page) is None
        assert 'class="reason"' not in page.text
    assert reason_shown(client.get("/login?jeff_reason=idle")) == ("idle", LOGIN_MESSAGES["idle"])


def test_a_signed_in_browser_is_not_told_its_session_ended(browser: Browser) -> None:
    client = logged_in(browser(), BOB)
    for reason in ("expired", "idle", "revoked", "evicted", "ended"):
        assert reason_shown(client.get(f"/login?jeff_reason={reason}")) is None


def test_a_failed_attempt_still_says_why(browser: Browser) -> None:
    client = browser()
    form = client.get("/login?next=%2Fusers&jeff_reason=revoked").forms["login-form"]
    form["email"], form["password"] = BOB, "wrong"
    res = form.submit()
    query = {"next": ["/users"], "jeff_reason": ["revoked"]}
    page = refused(res, query)
    assert error_shown(page) == "Wrong email or password."
    assert reason_shown(page) == ("revoked", LOGIN_MESSAGES["revoked"])
    form = page.forms["login-form"]
    form["password"] = DEMO_PASSWORD
    assert location(form.submit()) == ("/users", {})


# --- jeff.max_sessions_policy = reject -------------------------------------------------------


def test_too_many_devices_is_a_message_not_an_error(make_demo: DemoFactory) -> None:
    browser = browsers(
        make_demo(**{"jeff.max_sessions": "2", "jeff.max_sessions_policy": "reject"})
    )
    first, second = logged_in(browser(), BOB), logged_in(browser(PHONE), BOB)
    third = browser()
    page = refused(login(third, BOB))
    assert error_shown(page) == "You are signed in on too many devices; sign out of one first."
    assert third.get("/users").status_int == 303
    assert first.get("/users").status_int == 200 and second.get("/users").status_int == 200
    assert login(browser(), ALICE).status_int == 303  # another user has room of their own
    # Signing in again on a device that is signed in replaces its session: no room needed.
    assert login(first, BOB).status_int == 303
    # Once a device signs out, there is room again.
    second.post("/logout", {"csrf_token": csrf_token(second.get("/products"))})
    assert login(third, BOB).status_int == 303
    assert third.get("/users").status_int == 200


# --- admin: a user's sessions, sign out everyone ---------------------------------------------


def test_admin_lists_the_sessions_of_a_chosen_user(browser: Browser) -> None:
    alice = logged_in(browser(), ALICE)
    logged_in(browser(FIREFOX, "192.0.2.10"), BOB)
    logged_in(browser(PHONE, "198.51.100.7"), BOB)
    assert 'id="sessions-of"' not in alice.get("/admin").text  # nobody chosen yet
    page = alice.get("/admin", {"email": BOB})
    assert f'<tr class="user-row chosen" data-email="{BOB}">' in page.text
    section = page.text.split('id="sessions-of"')[1].split("</section>")[0]
    assert len(device_ids(page)) == 2
    assert "Firefox on Linux" in section and "Chrome on Android" in section
    assert "192.0.2.10" in section and "198.51.100.7" in section
    assert section.count(" UTC</div>") == 4  # signed in, last seen
    assert this_session_id(alice) not in device_ids(page)
    assert "this device" not in section
    # Her own sessions: this browser is marked.
    page = alice.get("/admin", {"email": ALICE})
    assert device_ids(page) == [this_session_id(alice)]
    assert "this device</span>" in page.text
    # Not a user: nothing to list.
    for email in ("eve@example.com", "", "<b>"):
        page = alice.get("/admin", {"email": email})
        assert 'id="sessions-of"' not in page.text and not device_ids(page)


def test_admin_ends_one_session_of_a_user(browser: Browser) -> None:
    alice = logged_in(browser(), ALICE)
    laptop, phone = logged_in(browser(FIREFOX), BOB), logged_in(browser(PHONE), BOB)
    laptop_id, phone_id = this_session_id(laptop), this_session_id(phone)
    page = alice.get("/admin", {"email": BOB})
    res = alice.post(
        "/admin/revoke-session",
        {"email": BOB, "session_id": phone_id, "csrf_token": csrf_token(page)},
    )
    assert location(res) == ("/admin", {"email": [BOB]})
    page = res.follow()
    assert f"Ended that session of {BOB}." in page.text
    assert device_ids(page) == [laptop_id]
    sent_to_login(phone.get("/users"), "revoked")
    assert laptop.get("/users").status_int == 200


def test_admin_ending_a_session_is_scoped_to_the_user(browser: Browser) -> None:
    alice, alice_phone = logged_in(browser(), ALICE), logged_in(browser(PHONE), ALICE)
    bob = logged_in(browser(), BOB)
    token = csrf_token(alice.get("/admin"))
    for email in (BOB, "nobody@example.com", ""):
        res = alice.post(
            "/admin/revoke-session",
            {"email": email, "session_id": this_session_id(alice_phone), "csrf_token": token},
        )
        assert "That session had already ended." in res.follow().text
    assert alice_phone.get("/users").status_int == 200 and bob.get("/users").status_int == 200


def test_admin_ending_her_own_session_here_is_logging_out(browser: Browser) -> None:
    alice = logged_in(browser(), ALICE)
    page = alice.get("/admin", {"email": ALICE})
    res = alice.post(
        "/admin/revoke-session",
        {"email": ALICE, "session_id": this_session_id(alice), "csrf_token": csrf_token(page)},
    )
    assert location(res) == ("/login", {})
    assert "max-age=0" in session_cookie(res).lower()
    assert "You are signed out." in res.follow().text


def test_bob_cannot_end_sessions_as_an_admin(browser: Browser) -> None:
    alice, bob = logged_in(browser(), ALICE), logged_in(browser(), BOB)
    token = csrf_token(bob.get("/sessions"))
    bob.get("/admin/sign-out-everyone", status=403)
    bob.post("/admin/sign-out-everyone", {"csrf_token": token}, status=403)
    bob.post(
        "/admin/revoke-session",
        {"email": ALICE, "session_id": this_session_id(alice), "csrf_token": token},
        status=403,
    )
    assert alice.get("/admin").status_int == 200
    sent_to_login(browser().get("/admin/sign-out-everyone"), None, next="/admin/sign-out-everyone")


def test_admin_signs_out_everyone_after_confirming(browser: Browser) -> None:
    alice, alice_phone = logged_in(browser(), ALICE), logged_in(browser(PHONE), ALICE)
    bobs = [logged_in(browser(), BOB), logged_in(browser(PHONE), BOB)]
    before = this_session_id(alice)
    # The admin page only links to the confirmation, which itself ends nothing.
    assert 'href="/admin/sign-out-everyone">Sign out everyone' in alice.get("/admin").text
    page = alice.get("/admin/sign-out-everyone")
    assert "This ends all 4 live session(s) of 2 user(s)" in page.text
    assert all(b.get("/users").status_int == 200 for b in (alice_phone, *bobs))
    res = page.forms["everyone-form"].submit()
    assert location(res) == ("/login", {})
    page = res.follow()
    assert "Everyone is signed out, you too: sign in again." in page.text
    # This browser too must sign in again, with its password.
    sent_to_login(alice.get("/users"), None)
    after = this_session_id(logged_in(alice, ALICE))
    assert after != before
    assert audit_entries(alice.get("/admin"))[:2] == [
        ("created", ALICE, after, ""),
        ("everyone", "", "", ""),
    ]
    for other in (alice_phone, *bobs):
        sent_to_login(other.get("/users"), "revoked")
    # Logins after it work as usual.
    assert logged_in(bobs[0], BOB).get("/users").status_int == 200


# --- the audit trail -------------------------------------------------------------------------


def test_audit_trail_shows_every_login_and_why_each_session_ended(make_demo: DemoFactory) -> None:
    browser = browsers(make_demo(**{"jeff.max_sessions": "2"}))
    alice = logged_in(browser(), ALICE)
    a1 = this_session_id(alice)
    laptop = logged_in(browser(), BOB)
    b1 = this_session_id(laptop)
    b2 = this_session_id(logged_in(laptop, BOB))  # a new login in the same browser
    phone = logged_in(browser(PHONE), BOB)
    b3 = this_session_id(phone)
    tablet = logged_in(browser(), BOB)  # a third session: the cap is 2
    b4 = this_session_id(tablet)
    phone.post("/logout", {"csrf_token": csrf_token(phone.get("/products"))})
    page = alice.get("/admin", {"email": BOB})
    alice.post(
        "/admin/revoke-session", {"email": BOB, "session_id": b4, "csrf_token": csrf_token(page)}
    )
    page = alice.get("/admin")
    assert audit_entries(page) == [  # newest first
        ("ended", BOB, b4, "revoked"),
        ("ended", BOB, b3, "logout"),
        ("ended", BOB, b2, "evicted"),
        ("created", BOB, b4, ""),
        ("created", BOB, b3, ""),
        ("ended", BOB, b1, "replaced"),
        ("created", BOB, b2, ""),
        ("created", BOB, b1, ""),
        ("created", ALICE, a1, ""),
    ]
    assert '<span class="badge reason-evicted">evicted</span>' in page.text
    # Nothing secret: no cookie value, nor any part of one but the public session id.
    key_digest, _, token = alice.cookies["jeff"].split(".")
    assert token not in page.text and key_digest not in page.text


def test_audit_log_names_the_key_by_a_hash_and_never_a_token(
    browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pyramid_jeff_demo.audit")
    client = browser()
    cookie = session_cookie(login(client, BOB)).split(";")[0].split("=", 1)[1]
    key_digest, session_id, token = cookie.split(".")
    client.post("/logout", {"csrf_token": csrf_token(client.get("/products"))})
    lines = [r.getMessage() for r in caplog.records if r.name == "pyramid_jeff_demo.audit"]
    who = hashlib.sha256(BOB.encode()).hexdigest()[:12]
    assert lines == [
        f"event=created key={who} session_id={session_id} reason=-",
        f"event=ended key={who} session_id={session_id} reason=logout",
    ]
    for secret in (BOB, token, key_digest):
        assert secret not in "\n".join(lines)


def test_audit_trail_keeps_the_newest_entries_first() -> None:
    trail = AuditTrail(size=3)
    for n in range(5):
        trail(SessionEnded(None, BOB, f"id{n}", "revoked"))
    trail(EveryoneRevoked(None, 0))
    assert [(e.event, e.session_id) for e in trail.entries()] == [
        ("everyone", ""),
        ("ended", "id4"),
        ("ended", "id3"),
    ]


def test_each_app_has_its_own_trail(make_demo: DemoFactory) -> None:
    first, second = make_demo(), make_demo()
    logged_in(browsers(first)(), BOB)
    assert len(audit_trail(first.registry).entries()) == 1
    assert audit_trail(second.registry).entries() == []


# --- changing the password -------------------------------------------------------------------

NEW_PASSWORD = "correct horse battery staple"


def change_password(
    client: webtest.TestApp, current: str = DEMO_PASSWORD, new: str = NEW_PASSWORD
) -> webtest.TestResponse:
    form = client.get("/account/password").forms["password-form"]
    form["current_password"], form["new_password"] = current, new
    return form.submit()


def test_change_password_needs_a_login(browser: Browser) -> None:
    sent_to_login(browser().get("/account/password"), None, next="/account/password")


def test_change_password_needs_a_recent_login(
    demo_app: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(demo_app, monkeypatch)
    client = logged_in(browsers(demo_app)(), BOB)
    assert "Change password" in client.get("/account/password").text  # just logged in
    clock.advance(299)
    assert client.get("/account/password").status_int == 200
    clock.advance(2)
    page = sent_to_login(client.get("/account/password"), "reauthenticate", "/account/password")
    assert client.get("/users").status_int == 200  # still logged in, for everything else
    # The login page asks the signed-in user for their password, nobody else's.
    assert "<h1>Confirm it's you</h1>" in page.text
    assert re.search(rf'<input id="email" [^>]*value="{BOB}" readonly>', page.text)
    before = this_session_id(client)
    form = page.forms["login-form"]
    form["password"] = "wrong"
    res = form.submit()
    query = {"next": ["/account/password"], "jeff_reason": ["reauthenticate"]}
    page = refused(res, query)
    assert error_shown(page) == "Wrong email or password."
    assert "<h1>Confirm it's you</h1>" in page.text
    assert re.search(rf'<input id="email" [^>]*value="{BOB}" readonly>', page.text)
    form = page.forms["login-form"]
    form["password"] = DEMO_PASSWORD
    res = form.submit()
    assert location(res) == ("/account/password", {})
    assert "Change password" in res.follow().text
    assert this_session_id(client) != before  # a new login: the window starts again
    clock.advance(301)
    assert client.get("/account/password").status_int == 303


def test_confirming_the_password_is_for_the_signed_in_user(
    demo_app: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(demo_app, monkeypatch)
    client = logged_in(browsers(demo_app)(), BOB)
    clock.advance(301)
    page = client.get("/account/password").follow()
    token = csrf_token(page)
    # The email field is read-only; a forged one is ignored (every demo user shares a password).
    res = client.post(
        "/login?jeff_reason=reauthenticate",
        {"email": ALICE, "password": DEMO_PASSWORD, "next": "/admin", "csrf_token": token},
    )
    assert location(res) == ("/admin", {})
    assert f"Signed in as <strong>{BOB}</strong>" in client.get("/users").text
    client.get("/admin", status=403)


def test_an_old_login_cannot_post_a_new_password(
    demo_app: Router, monkeypatch: pytest.MonkeyPatch, restore_passwords: None
) -> None:
    clock = Clock(demo_app, monkeypatch)
    client = logged_in(browsers(demo_app)(), BOB)
    token = csrf_token(client.get("/account/password"))
    clock.advance(301)
    res = client.post(
        "/account/password",
        {"current_password": DEMO_PASSWORD, "new_password": NEW_PASSWORD, "csrf_token": token},
    )
    sent_to_login(res, "reauthenticate", next=None)  # no `next` for a POST
    assert pyramid_jeff_demo.security.authenticate(BOB, DEMO_PASSWORD) is not None


def test_changing_the_password_signs_out_every_other_device(
    browser: Browser, restore_passwords: None
) -> None:
    laptop = logged_in(browser(), BOB)
    others = [logged_in(browser(PHONE), BOB), logged_in(browser(), BOB)]
    alice = logged_in(browser(), ALICE)
    old_id, old_cookie = this_session_id(laptop), laptop.cookies["jeff"]
    res = change_password(laptop)
    assert location(res) == ("/sessions", {})
    assert jeff_cookies(res)  # a fresh session for this browser
    page = res.follow()
    assert "Your password is changed. Signed out 2 other device(s)." in page.text
    [new_id] = device_ids(page)
    assert new_id != old_id and laptop.cookies["jeff"] != old_cookie
    for other in others:
        sent_to_login(other.get("/users"), "revoked")
    # The session this browser had is over too: a stolen copy of its cookie is useless.
    assert browser().get("/users", headers={"Cookie": f"jeff={old_cookie}"}).status_int == 303
    assert alice.get("/users").status_int == 200  # other users are not affected
    # Only the new password works now.
    assert error_shown(refused(login(browser(), BOB))) == "Wrong email or password."
    assert login(browser(), BOB, password=NEW_PASSWORD).status_int == 303
    page = change_password(laptop, NEW_PASSWORD, NEW_PASSWORD)
    assert "The new password must differ from the current one." in page.text


def test_changing_the_password_on_the_only_device(
    browser: Browser, restore_passwords: None
) -> None:
    client = logged_in(browser(), BOB)
    page = change_password(client).follow()
    assert '<p class="notice" role="status">Your password is changed.</p>' in page.text
    assert len(device_ids(page)) == 1


@pytest.mark.parametrize(
    ("current", "new", "error"),
    [
        ("wrong", NEW_PASSWORD, "Your current password is not right."),
        (DEMO_PASSWORD, "too short", "The new password must have 12 to 128 characters."),
        (DEMO_PASSWORD, "x" * 129, "The new password must have 12 to 128 characters."),
    ],
)
def test_a_refused_password_change_changes_nothing(
    browser: Browser, restore_passwords: None, current: str, new: str, error: str
) -> None:
    client, phone = logged_in(browser(), BOB), logged_in(browser(PHONE), BOB)
    before = this_session_id(client)
    token = csrf_token(client.get("/account/password"))
    page = client.post(
        "/account/password",
        {"current_password": current, "new_password": new, "csrf_token": token},
    )
    assert page.status_int == 200
    assert f'<p class="error" role="alert">{error}</p>' in page.text
    assert not jeff_cookies(page)
    assert this_session_id(client) == before and phone.get("/users").status_int == 200
    assert pyramid_jeff_demo.security.authenticate(BOB, DEMO_PASSWORD) is not None


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
    manager = app.registry.getUtility(ISecurityPolicy).manager

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


def test_the_port_comes_from_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[str] = []
    monkeypatch.setattr(waitress, "serve", lambda app, listen, **kw: served.append(listen))
    server({"http_port": "6544"}, listen="localhost:6543 [::1]:6543", threads="4")(None)
    server({}, listen="localhost:6543")(None)
    assert served == ["localhost:6544 [::1]:6544", "localhost:6543"]
    with pytest.raises(SystemExit, match="a port is a number"):
        server({"http_port": "80a"})


def test_a_port_that_is_taken_is_one_line_of_advice(tmp_path: Path) -> None:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(Path(__file__).resolve().parent.parent / "development.ini")
    ini["server:main"]["listen"] = "127.0.0.1:6543"
    path = tmp_path / "taken.ini"
    with path.open("w") as f:
        ini.write(f)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "pyramid.scripts.pserve", str(path), f"http_port={port}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 1, done
    assert done.stderr.endswith(
        f"Cannot serve on 127.0.0.1:{port}: that port is taken (another pserve?). "
        "Choose another one: pserve taken.ini http_port=6544\n"
    ), done.stderr
    assert "Traceback" not in done.stdout + done.stderr
