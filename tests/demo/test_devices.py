"""The demo's "your devices" page: every session of the user, and ending them."""

from __future__ import annotations

import pytest

from ..helpers import on_memory
from .pages import (
    ALICE,
    BOB,
    FIREFOX,
    PHONE,
    STALE_FORM,
    Browser,
    csrf_token,
    device_ids,
    location,
    logged_in,
    sent_to_login,
    session_cookie,
)

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


@on_memory("demo_store_url")
def test_pages_with_personal_data_are_kept_out_of_every_cache(browser: Browser) -> None:
    """Session ids, addresses and the audit trail: not even the browser keeps them (Back
    on a shared computer after logout)."""
    alice = logged_in(browser(), ALICE)
    for path in ("/sessions", "/admin", "/admin/sign-out-everyone"):
        response = alice.get(path)
        assert response.headers["Cache-Control"] == "no-store", path
        assert "Cookie" in response.headers["Vary"]
    assert "no-store" not in alice.get("/products").headers.get("Cache-Control", "")
