"""Logging in, devices and logging out; re-authentication and the admin, in a real browser."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .chromium import (
    ADMIN,
    DESKTOP,
    PASSWORD,
    PHONE_UA,
    SCREENSHOTS,
    USER,
    Server,
    aged_login,
    browser_context,
    desk_context,
    fits,
    log_in,
    phone_context,
    screenshots,
    where,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page


def _from_a_protected_page_to_log_in_and_back(server: Server, page: Page) -> None:
    from playwright.sync_api import expect

    # Anonymous: a protected page lands on the login page, which remembers where we were.
    page.goto("/users")
    assert where(page) == ("/login", {"next": ["/users"]})
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_text("Log in to continue to /users")).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "login.png", full_page=True)
    # Logging in brings us back to /users.
    log_in(page, USER)
    page.wait_for_url(f"{server.url}/users")
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    expect(page.locator("header")).to_contain_text(f"Signed in as {USER}")


def _the_cookie_is_httponly_and_lax(laptop: BrowserContext, page: Page) -> None:
    cookies = {c["name"]: c for c in laptop.cookies()}
    assert "jeff" in cookies, cookies
    assert cookies["jeff"]["httpOnly"] is True
    assert cookies["jeff"]["sameSite"] == "Lax"
    assert cookies["jeff"]["secure"] is False  # plain http on localhost: development.ini
    assert USER not in cookies["jeff"]["value"]
    visible = page.evaluate("document.cookie")
    assert "jeff" not in [c.split("=")[0].strip() for c in visible.split(";")], visible


def _the_laptop_ends_the_phones_session(server: Server, page: Page) -> None:
    from playwright.sync_api import expect

    # The laptop sees both devices, itself marked.
    page.get_by_role("navigation").get_by_role("link", name="Devices").click()
    page.wait_for_url(f"{server.url}/sessions")
    devices = page.locator("tr.device")
    expect(devices).to_have_count(2)
    this_device = page.locator("tr.this-device")
    expect(this_device).to_have_count(1)
    expect(this_device).to_contain_text("this device")
    expect(this_device).to_contain_text("127.0.0.1")
    other = page.locator("tr.device:not(.this-device)")
    expect(other).to_contain_text("Chrome on Android")
    page.screenshot(path=SCREENSHOTS / "sessions.png", full_page=True)
    other.get_by_role("button", name="End session").click()
    page.wait_for_url(f"{server.url}/sessions")
    expect(page.get_by_text("That device is signed out.")).to_be_visible()
    expect(devices).to_have_count(1)


def test_login_devices_and_logout(server: Server, chromium: Browser) -> None:
    from playwright.sync_api import expect

    laptop = desk_context(chromium, server)
    page = laptop.new_page()
    _from_a_protected_page_to_log_in_and_back(server, page)
    _the_cookie_is_httponly_and_lax(laptop, page)

    # A second device logs in as the same user, and the laptop ends its session.
    phone = browser_context(chromium, server, DESKTOP, user_agent=PHONE_UA)
    phone_page = phone.new_page()
    phone_page.goto("/login")
    log_in(phone_page, USER)
    phone_page.wait_for_url(f"{server.url}/")
    expect(phone_page.locator("header")).to_contain_text(f"Signed in as {USER}")
    _the_laptop_ends_the_phones_session(server, page)

    # The phone's next click lands on the login page, which says why; its dead cookie is gone.
    phone_page.get_by_role("navigation").get_by_role("link", name="Users").click()
    phone_page.wait_for_url(re.compile(r"/login\?"))
    assert where(phone_page) == ("/login", {"next": ["/users"], "jeff_reason": ["revoked"]})
    expect(phone_page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(phone_page.get_by_text("signed out from another device")).to_be_visible()
    assert "jeff" not in {c["name"] for c in phone.cookies()}

    # The laptop logs out; /users needs a login again.
    page.locator("header").get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{server.url}/login")
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    assert "jeff" not in {c["name"] for c in laptop.cookies()}
    page.goto("/users")
    assert where(page) == ("/login", {"next": ["/users"]})

    phone.close()
    laptop.close()


def _bob_confirms_his_password(server: Server, phone: BrowserContext) -> tuple[Page, str]:
    """Bob's phone signed in ten minutes ago: too long ago to change the password as it is.
    His page, and the id of the session that confirming gave it."""
    from playwright.sync_api import expect

    cookie = aged_login(server, USER, minutes=10, user_agent=PHONE_UA)
    phone.add_cookies([{"name": "jeff", "value": cookie, "url": server.url}])
    bob = phone.new_page()
    bob.goto("/account/password")
    assert where(bob) == (
        "/login",
        {"next": ["/account/password"], "jeff_reason": ["reauthenticate"]},
    )
    expect(bob.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    expect(bob.get_by_text("Please confirm your password to continue.")).to_be_visible()
    expect(bob.get_by_label("Email")).to_have_value(USER)
    expect(bob.get_by_label("Email")).not_to_be_editable()
    fits(bob)
    bob.screenshot(path=SCREENSHOTS / "reauthenticate-phone.png", full_page=True)

    # Confirming the password is a new login: back to where bob was going.
    bob.get_by_label("Password").fill(PASSWORD)
    bob.get_by_role("button", name="Confirm password").click()
    bob.wait_for_url(f"{server.url}/account/password")
    expect(bob.get_by_role("heading", name="Change password")).to_be_visible()
    expect(bob.get_by_label("New password")).to_be_editable()
    fits(bob)
    bob.screenshot(path=SCREENSHOTS / "password-phone.png", full_page=True)
    bob.goto("/sessions")
    bobs_session = bob.locator("tr.this-device").get_attribute("data-session-id")
    assert bobs_session and bobs_session not in cookie  # not the aged session
    return bob, bobs_session


def _alice_ends_bobs_session(server: Server, alice: Page, bobs_session: str) -> None:
    from playwright.sync_api import expect

    alice.goto("/login")
    log_in(alice, ADMIN)
    alice.wait_for_url(f"{server.url}/")
    alice.get_by_role("navigation").get_by_role("link", name="Admin").click()
    alice.locator(f'tr.user-row[data-email="{USER}"]').get_by_role("link", name="Sessions").click()
    alice.wait_for_url(re.compile(r"/admin\?email="))
    row = alice.locator(f'#sessions-of tr.device[data-session-id="{bobs_session}"]')
    expect(row).to_contain_text("Chrome on Android")
    expect(row).to_contain_text("127.0.0.1")
    expect(alice.locator("#audit tr.audit-entry").first).to_contain_text(ADMIN)
    screenshots(alice, "admin")
    row.get_by_role("button", name="End session").click()
    expect(alice.get_by_text(f"Ended that session of {USER}.")).to_be_visible()
    expect(row).to_have_count(0)
    revoked = alice.locator("#audit tr.audit-entry").first
    expect(revoked).to_have_attribute("data-reason", "revoked")
    expect(revoked).to_contain_text(bobs_session)


def _alice_signs_out_everyone(server: Server, alice: Page) -> None:
    from playwright.sync_api import expect

    # Once confirmed: bob too, and alice, who signs in again.
    alice.get_by_role("link", name="Sign out everyone").click()
    alice.wait_for_url(f"{server.url}/admin/sign-out-everyone")
    expect(alice.get_by_role("heading", name="Sign out everyone?")).to_be_visible()
    alice.screenshot(path=SCREENSHOTS / "everyone-desktop.png", full_page=True)
    alice.get_by_role("button", name="Yes, sign out everyone").click()
    alice.wait_for_url(f"{server.url}/login")
    expect(alice.get_by_text("Everyone is signed out, you too")).to_be_visible()
    log_in(alice, ADMIN)
    alice.wait_for_url(lambda url: "/login" not in url)
    alice.goto("/admin")
    expect(alice.locator("header")).to_contain_text(f"Signed in as {ADMIN}")
    trail = alice.locator("#audit tr.audit-entry")
    expect(trail.nth(0)).to_have_attribute("data-event", "created")
    expect(trail.nth(1)).to_have_attribute("data-event", "everyone")


def test_reauthentication_and_admin(server: Server, chromium: Browser) -> None:
    from playwright.sync_api import expect

    phone = phone_context(chromium, server)
    bob, bobs_session = _bob_confirms_his_password(server, phone)
    # Alice, the admin, at her desk: bob's sessions, and the one on his phone ended.
    desk = desk_context(chromium, server)
    alice = desk.new_page()
    _alice_ends_bobs_session(server, alice, bobs_session)

    # Bob's phone is out at its next click, and told why.
    bob.get_by_role("navigation").get_by_role("link", name="Users").click()
    bob.wait_for_url(re.compile(r"/login\?"))
    assert where(bob) == ("/login", {"next": ["/users"], "jeff_reason": ["revoked"]})
    expect(bob.get_by_text("by an administrator")).to_be_visible()
    fits(bob)
    bob.screenshot(path=SCREENSHOTS / "login-revoked-phone.png", full_page=True)
    log_in(bob, USER)
    bob.wait_for_url(f"{server.url}/users")

    _alice_signs_out_everyone(server, alice)
    bob.reload()
    assert where(bob) == ("/login", {"next": ["/users"], "jeff_reason": ["revoked"]})

    desk.close()
    phone.close()
