"""The demo in a real browser: a real server process, headless Chromium, clicks like a person.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package (its own browser
downloads are not used). Without them the test is skipped, except in CI (CI=true), where
their absence is a failure.
"""

from __future__ import annotations

import configparser
import os
import re
import socket
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
    from playwright.sync_api import Browser, BrowserContext, Page

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
IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
IPV6 = "2001:db8:85a3:1234:5678:8a2e:370:7334"
STALE_FORM = "Your session had ended, so that form changed nothing. Please sign in again."


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


def _serve(directory: Path, store_url: str | None = None) -> Iterator[Server]:
    """`pserve` on a copy of development.ini (with this ``jeff.store``, if given), on a free
    loopback port: ``http_port=0`` on the command line, as a person would change it."""
    _require_browser()
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "development.ini")
    ini["server:main"]["listen"] = "127.0.0.1:6543"
    ini["app:main"]["pyramid.reload_templates"] = "false"
    if store_url is not None:
        ini["app:main"]["jeff.store"] = store_url
    path = directory / "browser-test.ini"
    with path.open("w") as f:
        ini.write(f)
    # The SQLite file beside the ini copy, fresh for each run.
    store_url = ini["app:main"]["jeff.store"].replace("%(here)s", str(path.parent))
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "pyramid.scripts.pserve", str(path), "http_port=0"],
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
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _serve(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def server_without_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo on a Redis that does not answer: nothing listens on that port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield from _serve(tmp_path_factory.mktemp("outage"), f"redis://127.0.0.1:{port}/0")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _where(page: Page) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(page.url)
    return parts.path, parse_qs(parts.query)


def _context(chromium: Browser, server: Server, viewport: Any, **options: Any) -> BrowserContext:
    """A browser profile of its own (cookies, history) on ``server``."""
    context = chromium.new_context(base_url=server.url, viewport=viewport, **options)
    context.set_default_timeout(TIMEOUT_MS)
    return context


def _desk(chromium: Browser, server: Server) -> BrowserContext:
    return _context(chromium, server, DESKTOP)


def _phone(chromium: Browser, server: Server) -> BrowserContext:
    return _context(chromium, server, PHONE, user_agent=PHONE_UA, is_mobile=True, has_touch=True)


def _log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _fits(page: Page) -> None:
    """Nothing sticks out sideways: a phone never scrolls the page horizontally, nor any
    card or table inside it (a card scrolls what is too wide rather than widen the page)."""
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{page.url}: {width[0]}px wide in a {width[1]}px window"
    wide = page.evaluate(
        "[...document.querySelectorAll('main, .card, table')]"
        ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.outerHTML.slice(0, 60))"
    )
    assert not wide, f"{page.url}: these scroll sideways in a {width[1]}px window: {wide}"


def _screenshots(page: Page, name: str) -> None:
    """``name``-desktop.png and ``name``-phone.png, of a page of a desktop browser made as
    narrow as a phone; the page fits both widths."""
    size = page.viewport_size
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        _fits(page)
        page.screenshot(path=SCREENSHOTS / f"{name}-{label}.png", full_page=True)
    if size is not None:
        page.set_viewport_size(size)


def _aged_login(
    server: Server, email: str, minutes: int, user_agent: str, ip: str = "127.0.0.1"
) -> str:
    """The cookie value of a session of ``email`` that logged in ``minutes`` ago from ``ip``,
    written into the server's store (its SQLite file) as if the server had made it then."""
    from pyramid_jeff import SessionManager, make_store
    from pyramid_jeff.settings import parse_settings

    store = make_store(parse_settings({"jeff.store": server.store_url}), {})
    then = time.time_ns() // 1_000_000 - minutes * 60_000
    try:
        manager = SessionManager(store, clock=lambda: then)
        _, credential = manager.create(email, ip=ip, user_agent=user_agent)
    finally:
        store.close()
    return credential.encode()


def _from_a_protected_page_to_log_in_and_back(server: Server, page: Page) -> None:
    from playwright.sync_api import expect

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

    laptop = _desk(chromium, server)
    page = laptop.new_page()
    _from_a_protected_page_to_log_in_and_back(server, page)
    _the_cookie_is_httponly_and_lax(laptop, page)

    # A second device logs in as the same user, and the laptop ends its session.
    phone = _context(chromium, server, DESKTOP, user_agent=PHONE_UA)
    phone_page = phone.new_page()
    phone_page.goto("/login")
    _log_in(phone_page, USER)
    phone_page.wait_for_url(f"{server.url}/")
    expect(phone_page.locator("header")).to_contain_text(f"Signed in as {USER}")
    _the_laptop_ends_the_phones_session(server, page)

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


def _bob_confirms_his_password(server: Server, phone: BrowserContext) -> tuple[Page, str]:
    """Bob's phone signed in ten minutes ago: too long ago to change the password as it is.
    His page, and the id of the session that confirming gave it."""
    from playwright.sync_api import expect

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
    return bob, bobs_session


def _alice_ends_bobs_session(server: Server, alice: Page, bobs_session: str) -> None:
    from playwright.sync_api import expect

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
    _screenshots(alice, "admin")
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
    _log_in(alice, ADMIN)
    alice.wait_for_url(lambda url: "/login" not in url)
    alice.goto("/admin")
    expect(alice.locator("header")).to_contain_text(f"Signed in as {ADMIN}")
    trail = alice.locator("#audit tr.audit-entry")
    expect(trail.nth(0)).to_have_attribute("data-event", "created")
    expect(trail.nth(1)).to_have_attribute("data-event", "everyone")


def test_reauthentication_and_admin(server: Server, chromium: Browser) -> None:
    from playwright.sync_api import expect

    phone = _phone(chromium, server)
    bob, bobs_session = _bob_confirms_his_password(server, phone)
    # Alice, the admin, at her desk: bob's sessions, and the one on his phone ended.
    desk = _desk(chromium, server)
    alice = desk.new_page()
    _alice_ends_bobs_session(server, alice, bobs_session)

    # Bob's phone is out at its next click, and told why.
    bob.get_by_role("navigation").get_by_role("link", name="Users").click()
    bob.wait_for_url(re.compile(r"/login\?"))
    assert _where(bob) == ("/login", {"next": ["/users"], "jeff_reason": ["revoked"]})
    expect(bob.get_by_text("by an administrator")).to_be_visible()
    _fits(bob)
    bob.screenshot(path=SCREENSHOTS / "login-revoked-phone.png", full_page=True)
    _log_in(bob, USER)
    bob.wait_for_url(f"{server.url}/users")

    _alice_signs_out_everyone(server, alice)
    bob.reload()
    assert _where(bob) == ("/login", {"next": ["/users"], "jeff_reason": ["revoked"]})

    desk.close()
    phone.close()


def test_tables_fit_a_phone_and_a_desk(server: Server, chromium: Browser) -> None:
    from playwright.sync_api import expect

    # Bob is also signed in on an iPhone over IPv6: the longest address a row shows.
    _aged_login(server, USER, minutes=0, user_agent=IPHONE_UA, ip=IPV6)
    for label, device in (("phone", _phone), ("desktop", _desk)):
        context = device(chromium, server)
        page = context.new_page()
        page.goto("/login")
        _log_in(page, ADMIN)
        page.wait_for_url(f"{server.url}/")
        for path in ("/users", f"/admin?email={USER}"):
            page.goto(path)
            _fits(page)
        expect(page.locator("#sessions-of tr.device", has_text=IPV6)).to_have_count(1)
        page.screenshot(path=SCREENSHOTS / f"admin-ipv6-{label}.png", full_page=True)
        page.goto("/login")
        _log_in(page, USER)
        page.wait_for_url(f"{server.url}/")
        page.goto("/sessions")
        expect(page.locator("tr.device", has_text=IPV6)).to_contain_text("Safari on iOS")
        _fits(page)
        page.screenshot(path=SCREENSHOTS / f"sessions-ipv6-{label}.png", full_page=True)
        context.close()


def test_error_pages_look_like_the_demo(server: Server, chromium: Browser) -> None:
    from playwright.sync_api import expect

    desk = _desk(chromium, server)
    page = desk.new_page()
    response = page.goto("/no/such/page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="There is no such page")).to_be_visible()
    _screenshots(page, "error-404")
    page.get_by_role("link", name="Back to the start").click()
    page.wait_for_url(f"{server.url}/")

    page.goto("/login")
    _log_in(page, USER)
    page.wait_for_url(f"{server.url}/")
    response = page.goto("/admin")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="This page is not for your account")).to_be_visible()
    _screenshots(page, "error-403")
    page.get_by_role("link", name="Sign in as someone else").click()
    page.wait_for_url(re.compile(r"/login\?next="))
    _log_in(page, ADMIN)
    page.wait_for_url(f"{server.url}/admin")
    desk.close()


def test_a_refused_login_is_not_a_form_to_resubmit(server: Server, chromium: Browser) -> None:
    from playwright.sync_api import expect

    desk = _desk(chromium, server)
    page = desk.new_page()
    posts: list[str] = []
    page.on(
        "request", lambda request: posts.append(request.url) if request.method == "POST" else None
    )
    page.goto("/products")
    page.goto("/users")
    with page.expect_navigation():
        _log_in(page, USER, "not the password")
    # Post/Redirect/Get: the POST was answered with a redirect to the login page.
    assert _where(page) == ("/login", {"next": ["/users"]})
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    expect(page.get_by_label("Email")).to_have_value(USER)
    expect(page.get_by_label("Password")).to_have_value("")
    _screenshots(page, "login-refused")
    # Reload, Back and Forward only ever GET: no "Confirm Form Resubmission".
    page.reload()
    expect(page.get_by_role("alert")).to_have_count(0)  # shown once
    page.go_back()
    page.go_back()
    assert _where(page) == ("/products", {})
    page.go_forward()
    page.go_forward()
    assert _where(page) == ("/login", {"next": ["/users"]})
    assert len(posts) == 1, posts
    _log_in(page, USER)
    page.wait_for_url(f"{server.url}/users")
    desk.close()


def test_a_stale_form_says_why_it_did_nothing(server: Server, chromium: Browser) -> None:
    from playwright.sync_api import expect

    laptop = _desk(chromium, server)
    phone = _context(chromium, server, DESKTOP, user_agent=PHONE_UA)
    other_device = phone.new_page()
    other_device.goto("/login")
    _log_in(other_device, USER)
    old_tab = laptop.new_page()
    old_tab.goto("/login?next=/sessions")
    _log_in(old_tab, USER)
    old_tab.wait_for_url(f"{server.url}/sessions")
    # Another tab of the laptop logs out; the old tab still shows "Log out everywhere else".
    new_tab = laptop.new_page()
    new_tab.goto("/products")
    new_tab.locator("header").get_by_role("button", name="Log out").click()
    new_tab.wait_for_url(f"{server.url}/login")
    old_tab.get_by_role("button", name="Log out everywhere else").click()
    old_tab.wait_for_url(f"{server.url}/login")
    expect(old_tab.get_by_role("status")).to_have_text(STALE_FORM)
    _screenshots(old_tab, "login-stale-form")
    other_device.goto("/users")  # nothing was changed: still signed in
    assert _where(other_device) == ("/users", {})
    phone.close()
    laptop.close()


def test_a_store_outage_page(
    server: Server, server_without_store: Server, chromium: Browser
) -> None:
    from playwright.sync_api import expect

    # A cookie of a real session: well-formed, so the server without a store asks its store.
    cookie = _aged_login(server, ADMIN, minutes=0, user_agent=PHONE_UA)
    desk = _desk(chromium, server_without_store)
    desk.add_cookies([{"name": "jeff", "value": cookie, "url": server_without_store.url}])
    page = desk.new_page()
    response = page.goto("/sessions")
    assert response is not None and response.status == 503
    assert response.headers["retry-after"] == "5"
    assert "no-store" in response.headers["cache-control"]
    expect(page.get_by_role("heading", name="Sessions are out of reach")).to_be_visible()
    _screenshots(page, "error-503")
    page.get_by_role("link", name="Try again").click()
    page.wait_for_url(f"{server_without_store.url}/sessions")
    for _ in range(50):  # the log line may still be on its way through the pipe
        if "session store unavailable (GET /sessions)" in server_without_store.output():
            break
        time.sleep(0.1)
    assert "session store unavailable (GET /sessions)" in server_without_store.output()
    desk.close()
