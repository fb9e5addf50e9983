"""The demo served by pserve in a process of its own, and headless Chromium on it: the
server, browser profiles, and what a person does and sees."""

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
    from playwright.sync_api import Browser, BrowserContext, Page


ROOT = Path(__file__).resolve().parents[2]
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


def require_browser() -> None:
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


def drain(server: Server, ready: threading.Event) -> None:
    assert server.process.stdout is not None
    for line in server.process.stdout:
        server.lines.append(line)
        # Waitress logs the address it actually bound, so port 0 (any free port) has no race.
        match = re.search(r"Serving on (http://127\.0\.0\.1:\d+)", line)
        if match and not server.url:
            server.url = match.group(1)
            ready.set()
    ready.set()  # the process ended: stop waiting


def serve(directory: Path, store_url: str | None = None) -> Iterator[Server]:
    """`pserve` on a copy of development.ini (with this ``jeff.store``, if given), on a free
    loopback port: ``http_port=0`` on the command line, as a person would change it."""
    require_browser()
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
    threading.Thread(target=drain, args=(srv, ready), daemon=True).start()
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


def where(page: Page) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(page.url)
    return parts.path, parse_qs(parts.query)


def browser_context(
    chromium: Browser, server: Server, viewport: Any, **options: Any
) -> BrowserContext:
    """A browser profile of its own (cookies, history) on ``server``."""
    context = chromium.new_context(base_url=server.url, viewport=viewport, **options)
    context.set_default_timeout(TIMEOUT_MS)
    return context


def desk_context(chromium: Browser, server: Server) -> BrowserContext:
    return browser_context(chromium, server, DESKTOP)


def phone_context(chromium: Browser, server: Server) -> BrowserContext:
    return browser_context(
        chromium, server, PHONE, user_agent=PHONE_UA, is_mobile=True, has_touch=True
    )


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def fits(page: Page) -> None:
    """Nothing sticks out sideways: a phone never scrolls the page horizontally, nor any
    card or table inside it (a card scrolls what is too wide rather than widen the page)."""
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{page.url}: {width[0]}px wide in a {width[1]}px window"
    wide = page.evaluate(
        "[...document.querySelectorAll('main, .card, table')]"
        ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.outerHTML.slice(0, 60))"
    )
    assert not wide, f"{page.url}: these scroll sideways in a {width[1]}px window: {wide}"


def screenshots(page: Page, name: str) -> None:
    """``name``-desktop.png and ``name``-phone.png, of a page of a desktop browser made as
    narrow as a phone; the page fits both widths."""
    size = page.viewport_size
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        fits(page)
        page.screenshot(path=SCREENSHOTS / f"{name}-{label}.png", full_page=True)
    if size is not None:
        page.set_viewport_size(size)


def aged_login(
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
