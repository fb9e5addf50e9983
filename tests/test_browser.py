"""The demo in a real browser: a real server process, headless Chromium, clicks like a person.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package (its own browser
downloads are not used). Without them the test is skipped, except in CI (CI=true), where
their absence is a failure.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The committed screenshots the README shows are refreshed only on request
# (JEFF_UPDATE_SCREENSHOTS=1), so an ordinary test run leaves the work tree clean.
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("JEFF_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "pyramid_jeff-screenshots"
)
PASSWORD = "demo"
USER = "bob@example.com"
# The second device is the same Chromium announcing itself as a phone, so that the two rows
# of "your devices" can be told apart, as they would be for a real user.
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
TIMEOUT_MS = 15_000
ADMIN = "alice@example.com"
NEW_PASSWORD = "correct horse battery staple"
PHONE: Any = {"width": 390, "height": 844}
DESKTOP: Any = {"width": 1120, "height": 760}


def _require_browser() -> None:
    reason = None
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is missing (pip install playwright)"
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true, and the browser test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class Server:
    process: subprocess.Popen[str]
    store_url: str  # jeff.store of the server's ini, which this process may open too
    url: str = ""
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "".join(self.lines)


def _drain(server: Server, ready: threading.Event) -> None:
    assert server.process.stdout is not None
    for line in server.process.stdout:
        server.lines.append(line)
        # Waitress logs the address it actually bound, so port 0 (any free port) has no race.
        match = re.search(r"Serving on (http://127\.0\.0\.1:\d+)", line)
        if match and not server.url:
            server.url = match.group(1)
            ready.set()
    ready.set()  # the process ended: stop waiting


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`pserve` on a copy of development.ini, listening on a free loopback port."""
    _require_browser()
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "development.ini")
    ini["server:main"]["listen"] = "127.0.0.1:0"
    ini["app:main"]["pyramid.reload_templates"] = "false"
    path = tmp_path_factory.mktemp("demo") / "browser-test.ini"
    with path.open("w") as f:
        ini.write(f)
    # The SQLite file beside the ini copy, fresh for each run.
    store_url = ini["app:main"]["jeff.store"].replace("%(here)s", str(path.parent))
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "pyramid.scripts.pserve", str(path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    srv = Server(process, store_url)
    ready = threading.Event()
    threading.Thread(target=_drain, args=(srv, ready), daemon=True).start()
    try:
        ready.wait(timeout=30)
        if not srv.url:
            pytest.fail(f"the demo server did not start:\n{srv.output()}", pytrace=False)
        yield srv
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    assert "Traceback" not in srv.output(), srv.output()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _where(page: Page) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(page.url)
    return parts.path, parse_qs(parts.query)


def _log_in(page: Page, email: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def _fits(page: Page) -> None:
    """Nothing sticks out sideways: a phone never scrolls the page horizontally."""
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{page.url}: {width[0]}px wide in a {width[1]}px window"


def _aged_login(server: Server, email: str, minutes: int, user_agent: str) -> str:
    """The cookie value of a session of ``email`` that logged in ``minutes`` ago, written into
    the server's store (its SQLite file) as if the server had made it then."""
    from pyramid_jeff import SessionManager, make_store
    from pyramid_jeff.settings import parse_settings

    store = make_store(parse_settings({"jeff.store": server.store_url}), {})
    then = time.time_ns() // 1_000_000 - minutes * 60_000
    try:
        manager = SessionManager(store, clock=lambda: then)
        _, credential = manager.create(email, ip="127.0.0.1", user_agent=user_agent)
    finally:
        store.close()
    return credential.encode()


def test_login_devices_and_logout(server: Server, chromium: Browser) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = DESKTOP

    laptop = chromium.new_context(base_url=server.url, viewport=viewport)
    laptop.set_default_timeout(TIMEOUT_MS)
    page = laptop.new_page()

    # Anonymous: a protected page lands on the login page, which remembers where we were.
    page.goto("/users")
    assert _where(page) == ("/login", {"next": ["/users"]})
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_text("Log in to continue to /users")).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "login.png", full_page=True)

    # Logging in brings us back to /users.
    _log_in(page, USER)
    page.wait_for_url(f"{server.url}/users")
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    expect(page.locator("header")).to_contain_text(f"Signed in as {USER}")

    # The session cookie is HttpOnly (scripts cannot read it) and SameSite=Lax.
    cookies = {c["name"]: c for c in laptop.cookies()}
    assert "jeff" in cookies, cookies
    assert cookies["jeff"]["httpOnly"] is True
    assert cookies["jeff"]["sameSite"] == "Lax"
    assert cookies["jeff"]["secure"] is False  # plain http on localhost: development.ini
    assert USER not in cookies["jeff"]["value"]
    visible = page.evaluate("document.cookie")
    assert "jeff" not in [c.split("=")[0].strip() for c in visible.split(";")], visible

    # A second device logs in as the same user.
    phone = chromium.new_context(base_url=server.url, viewport=viewport, user_agent=PHONE_UA)
    phone.set_default_timeout(TIMEOUT_MS)
    phone_page = phone.new_page()
    phone_page.goto("/login")
    _log_in(phone_page, USER)
    phone_page.wait_for_url(f"{server.url}/")
    expect(phone_page.locator("header")).to_contain_text(f"Signed in as {USER}")

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

    # The laptop ends the phone's session.
    other.get_by_role("button", name="End session").click()
    page.wait_for_url(f"{server.url}/sessions")
    expect(page.get_by_text("That device is signed out.")).to_be_visible()
    expect(devices).to_have_count(1)

    # The phone's next click lands on the login page, which says why; its dead cookie is gone.
    phone_page.get_by_role("navigation").get_by_role("link", name="Users").click()
    phone_page.wait_for_url(re.compile(r"/login\?"))
    assert _where(phone_page) == ("/login", {"next": ["/users"], "jeff_reason": ["revoked"]})
    expect(phone_page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(phone_page.get_by_text("signed out from another device")).to_be_visible()
    assert "jeff" not in {c["name"] for c in phone.cookies()}

    # The laptop logs out; /users needs a login again.
    page.locator("header").get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{server.url}/login")
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    assert "jeff" not in {c["name"] for c in laptop.cookies()}
    page.goto("/users")
    assert _where(page) == ("/login", {"next": ["/users"]})

    phone.close()
    laptop.close()


def test_reauthentication_and_admin(server: Server, chromium: Browser) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    # Bob's phone signed in ten minutes ago: too long ago to change the password as it is.
    phone = chromium.new_context(
        base_url=server.url, viewport=PHONE, user_agent=PHONE_UA, is_mobile=True, has_touch=True
    )
    phone.set_default_timeout(TIMEOUT_MS)
    cookie = _aged_login(server, USER, minutes=10, user_agent=PHONE_UA)
    phone.add_cookies([{"name": "jeff", "value": cookie, "url": server.url}])
    bob = phone.new_page()
    bob.goto("/account/password")
    assert _where(bob) == (
        "/login",
        {"next": ["/account/password"], "jeff_reason": ["reauthenticate"]},
    )
    expect(bob.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    expect(bob.get_by_text("Please confirm your password to continue.")).to_be_visible()
    expect(bob.get_by_label("Email")).to_have_value(USER)
    expect(bob.get_by_label("Email")).not_to_be_editable()
    _fits(bob)
    bob.screenshot(path=SCREENSHOTS / "reauthenticate-phone.png", full_page=True)

    # Confirming the password is a new login: back to where bob was going.
    bob.get_by_label("Password").fill(PASSWORD)
    bob.get_by_role("button", name="Confirm password").click()
    bob.wait_for_url(f"{server.url}/account/password")
    expect(bob.get_by_role("heading", name="Change password")).to_be_visible()
    expect(bob.get_by_label("New password")).to_be_editable()
    _fits(bob)
    bob.screenshot(path=SCREENSHOTS / "password-phone.png", full_page=True)
    bob.goto("/sessions")
    bobs_session = bob.locator("tr.this-device").get_attribute("data-session-id")
    assert bobs_session and bobs_session not in cookie  # not the aged session

    # Alice, the admin, at her desk: bob's sessions, and the one on his phone ended.
    desk = chromium.new_context(base_url=server.url, viewport=DESKTOP)
    desk.set_default_timeout(TIMEOUT_MS)
    alice = desk.new_page()
    alice.goto("/login")
    _log_in(alice, ADMIN)
    alice.wait_for_url(f"{server.url}/")
    alice.get_by_role("navigation").get_by_role("link", name="Admin").click()
    alice.locator(f'tr.user-row[data-email="{USER}"]').get_by_role("link", name="Sessions").click()
    alice.wait_for_url(re.compile(r"/admin\?email="))
    row = alice.locator(f'#sessions-of tr.device[data-session-id="{bobs_session}"]')
    expect(row).to_contain_text("Chrome on Android")
    expect(row).to_contain_text("127.0.0.1")
    expect(alice.locator("#audit tr.audit-entry").first).to_contain_text(ADMIN)
    alice.screenshot(path=SCREENSHOTS / "admin-desktop.png", full_page=True)
    alice.set_viewport_size(PHONE)
    _fits(alice)
    alice.screenshot(path=SCREENSHOTS / "admin-phone.png", full_page=True)
    alice.set_viewport_size(DESKTOP)
    row.get_by_role("button", name="End session").click()
    expect(alice.get_by_text(f"Ended that session of {USER}.")).to_be_visible()
    expect(row).to_have_count(0)
    revoked = alice.locator("#audit tr.audit-entry").first
    expect(revoked).to_have_attribute("data-reason", "revoked")
    expect(revoked).to_contain_text(bobs_session)

    # Bob's phone is out at its next click, and told why.
    bob.get_by_role("navigation").get_by_role("link", name="Users").click()
    bob.wait_for_url(re.compile(r"/login\?"))
    assert _where(bob) == ("/login", {"next": ["/users"], "jeff_reason": ["revoked"]})
    expect(bob.get_by_text("by an administrator")).to_be_visible()
    _fits(bob)
    bob.screenshot(path=SCREENSHOTS / "login-revoked-phone.png", full_page=True)
    _log_in(bob, USER)
    bob.wait_for_url(f"{server.url}/users")

    # Sign out everyone, once confirmed: bob too, and alice, who signs in again.
    alice.get_by_role("link", name="Sign out everyone").click()
    alice.wait_for_url(f"{server.url}/admin/sign-out-everyone")
    expect(alice.get_by_role("heading", name="Sign out everyone?")).to_be_visible()
    alice.screenshot(path=SCREENSHOTS / "everyone-desktop.png", full_page=True)
    alice.get_by_role("button", name="Yes, sign out everyone").click()
    alice.wait_for_url(f"{server.url}/login")
    expect(alice.get_by_text("Everyone is signed out, you too")).to_be_visible()
    _log_in(alice, ADMIN)
    alice.wait_for_url(lambda url: "/login" not in url)
    alice.goto("/admin")
    expect(alice.locator("header")).to_contain_text(f"Signed in as {ADMIN}")
    trail = alice.locator("#audit tr.audit-entry")
    expect(trail.nth(0)).to_have_attribute("data-event", "created")
    expect(trail.nth(1)).to_have_attribute("data-event", "everyone")
    bob.reload()
    assert _where(bob) == ("/login", {"next": ["/users"], "jeff_reason": ["revoked"]})

    desk.close()
    phone.close()
