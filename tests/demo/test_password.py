"""Changing the password in the demo: a recent login, and every other device signed out."""

from __future__ import annotations

import re

import pytest
import webtest
from pyramid.router import Router

import pyramid_jeff_demo
import pyramid_jeff_demo.security
from pyramid_jeff_demo.security import DEMO_PASSWORD

from .pages import (
    ALICE,
    BOB,
    PHONE,
    Browser,
    Clock,
    browsers,
    csrf_token,
    device_ids,
    error_shown,
    jeff_cookies,
    location,
    logged_in,
    login,
    refused,
    sent_to_login,
    this_session_id,
)

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
