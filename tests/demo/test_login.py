"""The demo's public pages, logging in and out, and CSRF, black box through WebTest."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from pyramid_jeff_demo.security import DEMO_PASSWORD

from ..helpers import on_memory
from .pages import (
    ALICE,
    BOB,
    PHONE,
    STALE_FORM,
    Browser,
    csrf_token,
    device_ids,
    error_shown,
    jeff_cookies,
    location,
    logged_in,
    login,
    refused,
    session_cookie,
)

# --- public pages and the login page ---------------------------------------------------------


@on_memory("demo_store_url")
def test_public_pages_need_no_login_and_set_no_session_cookie(browser: Browser) -> None:
    client = browser()
    for path in ("/", "/products", "/static/demo.css"):
        res = client.get(path)
        assert res.status_int == 200
        assert not [c for c in res.headers.getall("Set-Cookie") if c.startswith("jeff=")]
    assert "browsing anonymously" in client.get("/products").text


@on_memory("demo_store_url")
def test_login_page_documents_the_demo_users(browser: Browser) -> None:
    page = browser().get("/login")
    assert ALICE in page.text and BOB in page.text
    assert f'<code class="pw">{DEMO_PASSWORD}</code>' in page.text


@on_memory("demo_store_url")
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
@on_memory("demo_store_url")
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


@on_memory("demo_store_url")
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
