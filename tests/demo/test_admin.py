"""The demo's admin: ending a user's sessions, notices, a user's sessions, signing everyone out."""

from __future__ import annotations

import pytest

import pyramid_jeff_demo
import pyramid_jeff_demo.security

from ..helpers import on_memory
from .pages import (
    ALICE,
    BOB,
    FIREFOX,
    PHONE,
    Browser,
    audit_entries,
    csrf_token,
    device_ids,
    location,
    logged_in,
    sent_to_login,
    session_cookie,
    this_session_id,
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
@on_memory("demo_store_url")
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
@on_memory("demo_store_url")
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
