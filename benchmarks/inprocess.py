"""In-process setup: browser-like requests, logging in through an app, and timing cases."""

from __future__ import annotations

from collections.abc import Callable
from itertools import count
from typing import Any
from urllib.parse import quote

from apps import CLIENT_IP, USER_AGENT
from pyramid.request import Request
from timing import Case, wsgi_caller, wsgi_request

# What a browser sends with a navigation, besides the cookie (same for every variant).
BROWSER_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
    "Accept-Encoding": "gzip, deflate, br, zstd",
}
# The bare app ignores cookies, but gets a header of a typical size all the same.
DUMMY_COOKIE = "jeff=" + "x" * 80


def environ(path: str, method: str = "GET", cookie: str | None = None) -> dict[str, Any]:
    headers = dict(BROWSER_HEADERS)
    if cookie:
        headers["Cookie"] = cookie
    env = Request.blank(path, method=method, headers=headers, remote_addr=CLIENT_IP).environ
    env["SERVER_NAME"] = "localhost"  # AuthTkt sets domain cookies from it; keep it simple
    return env  # type: ignore[no-any-return]


def login(app: Any, userid: str) -> str:
    """Log in through the app's /login; return the ``Cookie`` header a browser would send."""
    status, headers, _ = wsgi_request(app, environ(f"/login?u={quote(userid)}", "POST"))
    if not status.startswith("200"):
        raise RuntimeError(f"login failed: {status}")
    return cookie_header(headers)


def cookie_header(headers: list[tuple[str, str]]) -> str:
    cookies: dict[str, str] = {}
    for name, value in headers:
        if name.lower() != "set-cookie" or "max-age=0" in value.lower():
            continue
        pair = value.split(";", 1)[0]
        cname, _, cvalue = pair.partition("=")
        cookies[cname.strip()] = cvalue.strip()
    if not cookies:
        raise RuntimeError("login set no cookie")
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def check_protected(app: Any, cookie: str, *, refuses_anonymous: bool = True) -> None:
    """The protected view must answer 200 with the cookie and refuse without it."""
    status, _, _ = wsgi_request(app, environ("/private", cookie=cookie))
    if not status.startswith("200"):
        raise RuntimeError(f"authenticated request got {status}")
    if not refuses_anonymous:
        return
    status, _, _ = wsgi_request(app, environ("/private", cookie=DUMMY_COOKIE))
    if status.startswith("200"):
        raise RuntimeError("anonymous request was let in: the view is not protected")


def verify_case(name: str, label: str, app: Any, cookie: str) -> Case:
    return Case(name, label, wsgi_caller(app, environ("/private", cookie=cookie), "200"))


def login_case(name: str, label: str, app: Any) -> Case:
    """Each call logs a *new* user in (a fresh login, no cookie), as a login form would."""
    numbers = count()
    tag = name.replace("-", "")

    def vary(env: dict[str, Any]) -> None:
        env["QUERY_STRING"] = f"u={tag}{next(numbers)}%40bench.example"

    return Case(name, label, wsgi_caller(app, environ("/login?u=x", "POST"), "200", vary))


def repeat(call: Callable[[], Any], n: int) -> None:
    for _ in range(n):
        call()
