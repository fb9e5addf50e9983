"""Small helpers the tests share."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any, TypeVar

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.router import Router

from pyramid_jeff.credentials import new_session_id
from pyramid_jeff.session import Session

HOUR_MS = 3_600_000
Client = TypeVar("Client", bound=webtest.TestApp)


# For a test that does not depend on the store: it runs on the memory store only, in place
# of every store the `store_url` fixture would give it (`on_memory("any_store_url")` for
# another such fixture).
def on_memory(fixture: str = "store_url") -> pytest.MarkDecorator:
    return pytest.mark.parametrize(fixture, ["memory"], indirect=True)


memory_only = on_memory()


def jeff_config(
    settings: Mapping[str, Any] | None = None, *, root_factory: Any = None, **jeff: Any
) -> Configurator:
    """A Configurator that has included pyramid_jeff, with these settings: keyword names
    become ``jeff.<name>``, ``settings`` gives full keys. Nothing else is set, so pyramid_jeff's
    defaults apply (the memory store)."""
    all_settings = {f"jeff.{name}": value for name, value in jeff.items()}
    all_settings.update(settings or {})
    config = Configurator(settings=all_settings, root_factory=root_factory)
    config.include("pyramid_jeff")
    return config


def jeff_app(settings: Mapping[str, Any] | None = None, **jeff: Any) -> Router:
    """The WSGI application of :func:`jeff_config` (with nothing else in it)."""
    return jeff_config(settings, **jeff).make_wsgi_app()


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


def login_cookie(app: Any, key: str = "bob@example.com") -> str:
    """The cookie value of a login of ``app`` (a JeffTestApp) as ``key``."""
    (header,) = set_cookies(app.login(key))
    return cookie_value(header)


def get_with_cookie_header(app: webtest.TestApp, header: str, path: str = "/public") -> Any:
    """``path`` with exactly this Cookie header, whatever the cookie jar holds."""
    app.reset()
    return app.get(path, extra_environ={"HTTP_COOKIE": header}, status="*")


def fresh_client(app: Client) -> Client:
    """Another browser on the same application (its own cookie jar), with the same
    ``manager`` if ``app`` has one."""
    client = type(app)(app.app, extra_environ=dict(app.extra_environ))
    if hasattr(app, "manager"):
        client.manager = app.manager  # type: ignore[attr-defined]
    return client


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
