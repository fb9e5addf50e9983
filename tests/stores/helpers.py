"""Builders the store tests share: sessions by a fixed clock, logins through the protocol,
what a key holds, threads started together."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any, TypeVar

from pyramid_jeff.credentials import key_digest
from pyramid_jeff.session import Session
from pyramid_jeff.stores import SessionStore

from ..helpers import HOUR_MS, stored_session

ALICE = "alice@example.com"
BOB = "bob@example.com"
T0 = 1_800_000_000_000  # a fixed "now": a test decides liveness by its own clock
MINUTE = 60_000
HOUR = HOUR_MS
DAY = 24 * HOUR


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def session(
    key: str = ALICE, *, created: int = T0, lifetime: int = HOUR, **fields: Any
) -> Session:
    """A session of ``key`` as a store keeps it (``last_seen``, ``session_id`` and the
    session's own fields as :func:`tests.helpers.stored_session` takes them)."""
    return stored_session(key, created=created, lifetime=lifetime, **fields)


def add(
    store: SessionStore,
    s: Session,
    *,
    max_sessions: int = 32,
    now: int | None = None,
    idle: int = 0,
    **kw: Any,
) -> list[str]:
    """The login of ``s`` through the protocol, by the clock ``now`` (``s.created_ms``
    unless told) and the idle timeout ``idle``; what it ended."""
    return store.create(
        key_digest(s.key),
        s,
        max_sessions=max_sessions,
        now_ms=s.created_ms if now is None else now,
        idle_timeout_ms=idle,
        **kw,
    )


def logged_in(store: SessionStore, count: int, *, created: int, **kw: Any) -> list[Session]:
    """``count`` logins of Alice, created a millisecond apart from ``created`` on."""
    made = [session(created=created + i) for i in range(count)]
    for s in made:
        add(store, s, **kw)
    return made


def ids(store: SessionStore, key: str = ALICE) -> set[str]:
    """The key's stored sessions, but tombstones."""
    return {s.id for s in store.list(key_digest(key)) if s.key == key and s.ended is None}


def tombstones(store: SessionStore, key: str = ALICE) -> dict[str, str | None]:
    return {s.id: s.ended for s in store.list(key_digest(key)) if s.key == key and s.ended}


def run_together(threads: Iterable[threading.Thread], timeout: float | None = None) -> None:
    """Start every thread, then wait for each (``timeout`` seconds at most for each)."""
    started = list(threads)
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(timeout)


B = TypeVar("B", bound="Background")


class Background:
    """Threads (``threads``, made by the subclass) that run from the start of a ``with``
    block until its end, when ``stop`` is set and each is given 30 s to finish; they put
    what they raise in ``errors``."""

    threads: list[threading.Thread]

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []

    def __enter__(self: B) -> B:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


class Touchers(Background):
    """``count`` threads that touch ``sessions`` over and over, a millisecond later each
    round from ``start`` on, until the ``with`` block ends; what they raised is in
    ``errors``."""

    def __init__(
        self,
        store: SessionStore,
        digest: str,
        sessions: list[Session],
        *,
        start: int,
        count: int = 1,
    ) -> None:
        super().__init__()
        self.store, self.digest, self.sessions, self.start = store, digest, sessions, start
        self.threads = [threading.Thread(target=self.touch) for _ in range(count)]

    def touch(self) -> None:
        seen = self.start
        try:
            while not self.stop.is_set():
                seen += 1
                for s in self.sessions:
                    self.store.touch(self.digest, s.id, seen, min_interval_ms=0)
        except BaseException as exc:
            self.errors.append(exc)
