"""What the demo's tests share: its users and browsers, and readers of its pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import webtest
from pyramid.router import Router

from pyramid_jeff.testing import jeff_policy
from pyramid_jeff_demo.security import DEMO_PASSWORD
from pyramid_jeff_demo.views.account import LOGIN_REASONS as LOGIN_MESSAGES

ALICE = "alice@example.com"  # admin
BOB = "bob@example.com"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
Browser = Callable[..., webtest.TestApp]
# What the login page says after a form was sent from a page of a session that had ended.
STALE_FORM = "Your session had ended, so that form changed nothing. Please sign in again."


DemoFactory = Callable[..., Router]


def browsers(app: Router) -> Browser:
    """A factory of browsers (cookie jars) on one running demo."""

    def make(user_agent: str = FIREFOX, ip: str = "192.0.2.10") -> webtest.TestApp:
        return webtest.TestApp(
            app, extra_environ={"HTTP_USER_AGENT": user_agent, "REMOTE_ADDR": ip}
        )

    return make


class Clock:
    """The demo's session clock, moved forward: sessions age without the test waiting."""

    def __init__(self, app: Router, monkeypatch: pytest.MonkeyPatch) -> None:
        manager = jeff_policy(app.registry).manager
        real = manager.clock
        self.offset_ms = 0
        monkeypatch.setattr(manager, "clock", lambda: real() + self.offset_ms)

    def advance(self, seconds: int) -> None:
        self.offset_ms += seconds * 1000


def csrf_token(page: webtest.TestResponse) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(
    client: webtest.TestApp, email: str, password: str = DEMO_PASSWORD, next: str | None = None
) -> webtest.TestResponse:
    page = client.get("/login" + (f"?next={quote(next, safe='')}" if next else ""))
    form = page.forms["login-form"]
    form["email"] = email
    form["password"] = password
    return form.submit()


def logged_in(client: webtest.TestApp, email: str) -> webtest.TestApp:
    res = login(client, email)
    assert res.status_int == 303, res
    return client


def location(res: webtest.TestResponse) -> tuple[str, dict[str, list[str]]]:
    """(path, query) of a redirect; the host must be this site."""
    parts = urlsplit(res.headers["Location"])
    assert parts.netloc in ("", "localhost", "localhost:80"), res.headers["Location"]
    return parts.path, parse_qs(parts.query)


def session_cookie(res: webtest.TestResponse) -> str:
    cookies: list[str] = [v for v in res.headers.getall("Set-Cookie") if v.startswith("jeff=")]
    assert len(cookies) == 1, res.headers.getall("Set-Cookie")
    return cookies[0]


def device_ids(page: webtest.TestResponse) -> list[str]:
    return re.findall(r'data-session-id="([^"]+)"', page.text)


def reason_shown(page: webtest.TestResponse) -> tuple[str, str] | None:
    """(reason, text) of the "why you are here" message of a login page, if any."""
    match = re.search(
        r'<p class="reason" role="status" data-reason="([^"]*)">([^<]*)</p>', page.text
    )
    return (match.group(1), match.group(2)) if match else None


def sent_to_login(
    res: webtest.TestResponse, reason: str | None, next: str | None = "/users"
) -> webtest.TestResponse:
    """``res`` redirects to the login page with this ``next`` and ``jeff_reason``, and that
    page (returned) says why."""
    assert res.status_int == 303, res
    query = {"next": [next]} if next else {}
    if reason is not None:
        query["jeff_reason"] = [reason]
    assert location(res) == ("/login", query)
    page = res.follow()
    if reason is None:
        assert reason_shown(page) is None
    else:
        assert reason_shown(page) == (reason, LOGIN_MESSAGES[reason])
    return page


def this_session_id(client: webtest.TestApp) -> str:
    """The public id of the session this browser holds, from its devices page."""
    page = client.get("/sessions")
    match = re.search(r'class="device this-device" data-session-id="([^"]+)"', page.text)
    assert match, "not logged in"
    return match.group(1)


def audit_entries(page: webtest.TestResponse) -> list[tuple[str, str, str, str]]:
    """(event, key, session id, reason) of each row of the admin page's audit trail."""
    entries = []
    for event, reason, cells in re.findall(
        r'<tr class="audit-entry" data-event="([^"]*)" data-reason="([^"]*)">(.*?)</tr>',
        page.text,
        re.DOTALL,
    ):
        key = re.search(r'<td data-label="User"><code>([^<]*)</code></td>', cells)
        session_id = re.search(r'<code class="sid">([^<]*)</code>', cells)
        entries.append(
            (event, key.group(1) if key else "", session_id.group(1) if session_id else "", reason)
        )
    return entries


def jeff_cookies(res: webtest.TestResponse) -> list[str]:
    return [c for c in res.headers.getall("Set-Cookie") if c.startswith("jeff=")]


def refused(
    res: webtest.TestResponse, query: dict[str, list[str]] | None = None
) -> webtest.TestResponse:
    """A refused login: redirected back to the login page (Post/Redirect/Get) with this
    query and no session cookie; that page, followed."""
    assert res.status_int == 303, res
    assert location(res) == ("/login", query or {})
    assert not jeff_cookies(res)
    return res.follow()


def error_shown(page: webtest.TestResponse) -> str | None:
    match = re.search(r'<p class="error" role="alert">([^<]*)</p>', page.text)
    return match.group(1) if match else None
