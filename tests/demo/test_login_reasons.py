"""Why the demo's login page is shown (request.jeff_login_reason), and a login past the cap."""

from __future__ import annotations

import pytest

import pyramid_jeff.views
from pyramid_jeff_demo.security import DEMO_PASSWORD
from pyramid_jeff_demo.views.account import LOGIN_REASONS as LOGIN_MESSAGES

from ..helpers import on_memory
from .pages import (
    ALICE,
    BOB,
    PHONE,
    Browser,
    Clock,
    DemoFactory,
    browsers,
    csrf_token,
    error_shown,
    location,
    logged_in,
    login,
    reason_shown,
    refused,
    sent_to_login,
)

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


@on_memory("demo_store_url")
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
