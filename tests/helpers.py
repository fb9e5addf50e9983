"""Small helpers the tests share."""

from __future__ import annotations

import secrets
from collections import Counter
from http.cookies import SimpleCookie
from typing import Any

import webtest

from pyramid_jeff.credentials import new_session_id
from pyramid_jeff.session import Session

HOUR_MS = 3_600_000


def stored_session(
    key: str,
    *,
    created: int,
    lifetime: int = HOUR_MS,
    last_seen: int | None = None,
    session_id: str | None = None,
    **fields: Any,
) -> Session:
    """A session as a store keeps it, for driving stores directly (times in ms)."""
    return Session(
        key=key,
        id=session_id or new_session_id(),
        created_ms=created,
        last_seen_ms=created if last_seen is None else last_seen,
        expires_ms=created + lifetime,
        token_digest=secrets.token_bytes(32),
        **fields,
    )


def set_cookies(response: webtest.TestResponse) -> list[str]:
    return response.headers.getall("Set-Cookie")


def cookie_attributes(header: str) -> dict[str, str]:
    """Attributes of one Set-Cookie header, lower-cased names; the cookie under '='."""
    first, *rest = header.split(";")
    attributes = {"=": first.strip()}
    for part in rest:
        name, _, value = part.strip().partition("=")
        attributes[name.lower()] = value
    return attributes


def cookie_value(header: str) -> str:
    parsed = SimpleCookie()
    parsed.load(header)
    (morsel,) = parsed.values()
    return morsel.value


def fresh_client(app: webtest.TestApp) -> webtest.TestApp:
    """Another browser on the same application (its own cookie jar)."""
    return type(app)(app.app, extra_environ=dict(app.extra_environ))


class Clock:
    """A manager clock the test moves by hand (milliseconds)."""

    def __init__(self, start_ms: int = 1_800_000_000_000) -> None:
        self.now = start_ms

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


class CountingStore:
    """Delegates to a real store and counts every call the manager makes."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)
        if not callable(method):
            return method

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted

    def total(self) -> int:
        return sum(self.calls.values())
