"""The demo's pages in a real browser: tables that fit a phone, error pages, a refused login,
a stale form, a store outage."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from .chromium import (
    ADMIN,
    DESKTOP,
    IPHONE_UA,
    IPV6,
    PHONE_UA,
    SCREENSHOTS,
    STALE_FORM,
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
    from playwright.sync_api import Browser


def test_tables_fit_a_phone_and_a_desk(server: Server, chromium: Browser) -> None:
    from playwright.sync_api import expect

    # Bob is also signed in on an iPhone over IPv6: the longest address a row shows.
    aged_login(server, USER, minutes=0, user_agent=IPHONE_UA, ip=IPV6)
    for label, device in (("phone", phone_context), ("desktop", desk_context)):
        context = device(chromium, server)
        page = context.new_page()
        page.goto("/login")
        log_in(page, ADMIN)
        page.wait_for_url(f"{server.url}/")
        for path in ("/users", f"/admin?email={USER}"):
            page.goto(path)
            fits(page)
        expect(page.locator("#sessions-of tr.device", has_text=IPV6)).to_have_count(1)
        page.screenshot(path=SCREENSHOTS / f"admin-ipv6-{label}.png", full_page=True)
        page.goto("/login")
        log_in(page, USER)
        page.wait_for_url(f"{server.url}/")
        page.goto("/sessions")
        expect(page.locator("tr.device", has_text=IPV6)).to_contain_text("Safari on iOS")
        fits(page)
        page.screenshot(path=SCREENSHOTS / f"sessions-ipv6-{label}.png", full_page=True)
        context.close()


def test_error_pages_look_like_the_demo(server: Server, chromium: Browser) -> None:
    from playwright.sync_api import expect

    desk = desk_context(chromium, server)
    page = desk.new_page()
    response = page.goto("/no/such/page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="There is no such page")).to_be_visible()
    screenshots(page, "error-404")
    page.get_by_role("link", name="Back to the start").click()
    page.wait_for_url(f"{server.url}/")

    page.goto("/login")
    log_in(page, USER)
    page.wait_for_url(f"{server.url}/")
    response = page.goto("/admin")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="This page is not for your account")).to_be_visible()
    screenshots(page, "error-403")
    page.get_by_role("link", name="Sign in as someone else").click()
    page.wait_for_url(re.compile(r"/login\?next="))
    log_in(page, ADMIN)
    page.wait_for_url(f"{server.url}/admin")
    desk.close()


def test_a_refused_login_is_not_a_form_to_resubmit(server: Server, chromium: Browser) -> None:
    from playwright.sync_api import expect

    desk = desk_context(chromium, server)
    page = desk.new_page()
    posts: list[str] = []
    page.on(
        "request", lambda request: posts.append(request.url) if request.method == "POST" else None
    )
    page.goto("/products")
    page.goto("/users")
    with page.expect_navigation():
        log_in(page, USER, "not the password")
    # Post/Redirect/Get: the POST was answered with a redirect to the login page.
    assert where(page) == ("/login", {"next": ["/users"]})
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    expect(page.get_by_label("Email")).to_have_value(USER)
    expect(page.get_by_label("Password")).to_have_value("")
    screenshots(page, "login-refused")
    # Reload, Back and Forward only ever GET: no "Confirm Form Resubmission".
    page.reload()
    expect(page.get_by_role("alert")).to_have_count(0)  # shown once
    page.go_back()
    page.go_back()
    assert where(page) == ("/products", {})
    page.go_forward()
    page.go_forward()
    assert where(page) == ("/login", {"next": ["/users"]})
    assert len(posts) == 1, posts
    log_in(page, USER)
    page.wait_for_url(f"{server.url}/users")
    desk.close()


def test_a_stale_form_says_why_it_did_nothing(server: Server, chromium: Browser) -> None:
    from playwright.sync_api import expect

    laptop = desk_context(chromium, server)
    phone = browser_context(chromium, server, DESKTOP, user_agent=PHONE_UA)
    other_device = phone.new_page()
    other_device.goto("/login")
    log_in(other_device, USER)
    old_tab = laptop.new_page()
    old_tab.goto("/login?next=/sessions")
    log_in(old_tab, USER)
    old_tab.wait_for_url(f"{server.url}/sessions")
    # Another tab of the laptop logs out; the old tab still shows "Log out everywhere else".
    new_tab = laptop.new_page()
    new_tab.goto("/products")
    new_tab.locator("header").get_by_role("button", name="Log out").click()
    new_tab.wait_for_url(f"{server.url}/login")
    old_tab.get_by_role("button", name="Log out everywhere else").click()
    old_tab.wait_for_url(f"{server.url}/login")
    expect(old_tab.get_by_role("status")).to_have_text(STALE_FORM)
    screenshots(old_tab, "login-stale-form")
    other_device.goto("/users")  # nothing was changed: still signed in
    assert where(other_device) == ("/users", {})
    phone.close()
    laptop.close()


def test_a_store_outage_page(
    server: Server, server_without_store: Server, chromium: Browser
) -> None:
    from playwright.sync_api import expect

    # A cookie of a real session: well-formed, so the server without a store asks its store.
    cookie = aged_login(server, ADMIN, minutes=0, user_agent=PHONE_UA)
    desk = desk_context(chromium, server_without_store)
    desk.add_cookies([{"name": "jeff", "value": cookie, "url": server_without_store.url}])
    page = desk.new_page()
    response = page.goto("/sessions")
    assert response is not None and response.status == 503
    assert response.headers["retry-after"] == "5"
    assert "no-store" in response.headers["cache-control"]
    expect(page.get_by_role("heading", name="Sessions are out of reach")).to_be_visible()
    screenshots(page, "error-503")
    page.get_by_role("link", name="Try again").click()
    page.wait_for_url(f"{server_without_store.url}/sessions")
    for _ in range(50):  # the log line may still be on its way through the pipe
        if "session store unavailable (GET /sessions)" in server_without_store.output():
            break
        time.sleep(0.1)
    assert "session store unavailable (GET /sessions)" in server_without_store.output()
    desk.close()
