"""Helpers for applications' own test suites.

``login(testapp, key)`` logs a WebTest app in as ``key`` without going through a login
form; :class:`CountingStore` (``jeff.store = pyramid_jeff.testing.counting_store``)
counts the store calls a request makes, to pin "one read per request" in a test.
"""

from __future__ import annotations

import builtins
import http.cookiejar
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import deadline
from .policy import jeff_policy
from .session import Session
from .stores.memory import MemoryStore
from .stores.protocol import SessionStore

if TYPE_CHECKING:
    from pyramid.registry import Registry

__all__ = ["CountingStore", "counting_store", "jeff_policy", "login"]


def login(
    testapp: Any,
    key: Any,
    *,
    meta: Mapping[str, Any] | None = None,
    max_age: int | None = None,
    registry: Registry | None = None,
) -> Session:
    """Log the ``webtest.TestApp`` in as ``key``: a real session in the app's store and
    its cookie in the TestApp's cookie jar (sent over http and https alike).

    ``registry`` is needed only when the TestApp wraps middleware rather than the
    Pyramid app itself. Returns the new session (``request.jeff_session`` of the next
    requests). ``testapp.reset()`` forgets the cookie; the session lives on in the store.
    """
    if registry is None:
        registry = getattr(testapp.app, "registry", None)
        if registry is None:
            raise TypeError("login(): pass registry= when the TestApp wraps middleware")
    policy = jeff_policy(registry)
    session, credential = policy.manager.create(key, meta=meta, max_age=max_age)
    _set_cookie(testapp, policy.cookie.name, credential.encode())
    return session


def _set_cookie(testapp: Any, name: str, value: str) -> None:
    # As TestApp.set_cookie, minus its quoting of values that hold a ".", which our
    # strict cookie parsing (rightly) reads as "not logged in".
    host = str(testapp.extra_environ.get("HTTP_HOST", "localhost")).split(":", 1)[0]
    domain = host if "." in host else f"{host}.local"
    testapp.cookiejar.set_cookie(
        http.cookiejar.Cookie(
            version=0,
            name=name,
            value=value,
            port=None,
            port_specified=False,
            domain=domain,
            domain_specified=True,
            domain_initial_dot=False,
            path="/",
            path_specified=True,
            secure=False,
            expires=None,
            discard=False,
            comment=None,
            comment_url=None,
            rest={},
        )
    )


class CountingStore:
    """A store that counts the calls made to another one (by default a new
    :class:`~pyramid_jeff.MemoryStore`): ``calls["get"]``, ``calls["touch"]``...

    With ``jeff.store = pyramid_jeff.testing.counting_store``, a test can do::

        store = jeff_policy(testapp.app.registry).manager.store
        store.reset()
        testapp.get("/profile")
        assert store.calls == {"get": 1}
    """

    def __init__(self, store: SessionStore | None = None) -> None:
        self.store: SessionStore = MemoryStore() if store is None else store
        self.calls: Counter[str] = Counter()

    @property
    def request_budget(self) -> float | None:
        """The wrapped store's (see :mod:`pyramid_jeff.deadline`)."""
        return deadline.request_budget(self.store)

    def reset(self) -> None:
        """Start counting afresh."""
        self.calls.clear()

    def create(self, key_digest: str, session: Session, **kw: Any) -> list[str]:
        self.calls["create"] += 1
        return self.store.create(key_digest, session, **kw)

    def get(self, key_digest: str, session_id: str) -> Session | None:
        self.calls["get"] += 1
        return self.store.get(key_digest, session_id)

    def touch(self, key_digest: str, session_id: str, last_seen_ms: int, **kw: Any) -> bool:
        self.calls["touch"] += 1
        return self.store.touch(key_digest, session_id, last_seen_ms, **kw)

    def list(self, key_digest: str) -> list[Session]:
        self.calls["list"] += 1
        return self.store.list(key_digest)

    def revoke(self, key_digest: str, session_id: str, **kw: Any) -> bool:
        self.calls["revoke"] += 1
        return self.store.revoke(key_digest, session_id, **kw)

    def revoke_all(self, key_digest: str, **kw: Any) -> builtins.list[str]:
        self.calls["revoke_all"] += 1
        return self.store.revoke_all(key_digest, **kw)

    def revoke_everyone(self, *, now_ms: int) -> None:
        self.calls["revoke_everyone"] += 1
        self.store.revoke_everyone(now_ms=now_ms)

    def close(self) -> None:
        self.store.close()


def counting_store(settings: Mapping[str, Any]) -> CountingStore:
    """``jeff.store = pyramid_jeff.testing.counting_store``: counted, in memory."""
    return CountingStore()
