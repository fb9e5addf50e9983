"""The site and the load of test_outages_under_load.py: the test application on a private
Redis with logged-in users, and threads sending a mix of requests, every outcome noted."""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from pyramid.interfaces import ISecurityPolicy
from webob import Request

from pyramid_jeff import SessionManager
from pyramid_jeff.credentials import key_digest

from ...app import make_wsgi_app
from ...conftest import HTTPS
from ...redis_server import RedisServer
from ..helpers import Background

TIMEOUT = 0.25  # jeff.redis.socket_timeout and socket_connect_timeout, seconds
# A request makes at most one Redis call that can time out; the rest is Python on a
# shared two-core machine, so the bound allows for scheduling, not for retries.
MAX_LATENCY = TIMEOUT + 0.75
OUTAGE = float(os.environ.get("JEFF_OUTAGE_SECONDS", "1.5"))
RECOVERY = 1.0  # seconds after Redis is back by which every request must succeed again
THREADS = 6
COOKIE = "__Host-jeff"
USERS = [f"user{n}@example.com" for n in range(12)]
NEEDS_SESSION = {"protected", "whoami", "public", "sessions"}
SESSION_FREE = "load-static-anonymous"  # the name of the thread that sends them


class StoreSpy:
    """Delegates to the real store, noting which threads call it."""

    def __init__(self, store: Any, callers: set[str]) -> None:
        self.store = store
        self.callers = callers

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)
        if not callable(method):
            return method

        def spied(*args: Any, **kwargs: Any) -> Any:
            self.callers.add(threading.current_thread().name)
            return method(*args, **kwargs)

        return spied


class Site:
    """The test application on a private Redis, with logged-in users."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.wsgi = make_wsgi_app(
            {
                "jeff.store": server.url,
                "jeff.login_url": "/login",
                "jeff.redis.socket_timeout": str(TIMEOUT),
                "jeff.redis.socket_connect_timeout": str(TIMEOUT),
            }
        )
        self.manager: SessionManager = self.wsgi.registry.getUtility(ISecurityPolicy).manager
        self.store_callers: set[str] = set()  # names of the threads that called the store
        self.manager.store = StoreSpy(self.manager.store, self.store_callers)  # type: ignore[assignment]
        self.cookies: dict[str, str] = {}  # user -> cookie value
        for user in USERS:
            response = self.request("POST", "/login", form={"key": user})
            assert response.status_code == 303
            (header,) = response.headers.getall("Set-Cookie")
            self.cookies[user] = header.split(";")[0].split("=", 1)[1]

    def request(
        self, method: str, path: str, user: str | None = None, form: dict[str, str] | None = None
    ) -> Any:
        headers = {"Cookie": f"{COOKIE}={self.cookies[user]}"} if user else {}
        request = Request.blank(
            path, environ=dict(HTTPS), headers=headers, method=method, POST=form
        )
        return request.get_response(self.wsgi)

    def stored_session_ids(self, users: list[str] = USERS) -> dict[str, set[str]]:
        """What Redis holds per user, read with a patient client of our own."""
        client = self.server.client()
        try:
            return {
                user: {f.decode() for f in client.hkeys(f"jeff:{{{key_digest(user)}}}")}
                for user in users
            }
        finally:
            client.close()


@dataclass(frozen=True)
class Outcome:
    kind: str
    user: str | None
    started: float  # time.monotonic()
    elapsed: float
    status: int
    set_cookies: tuple[str, ...]
    body: str


class Load(Background):
    """Threads sending a mix of requests until stopped, recording every outcome."""

    # Four threads need the session; one logs new users in; one never needs a session.
    MIXES = [["protected"] * 3 + ["whoami", "public", "sessions"]] * (THREADS - 2) + [
        ["login"],
        ["static", "anonymous"],
    ]

    def __init__(self, site: Site) -> None:
        super().__init__()
        self.site = site
        self.outcomes: list[Outcome] = []
        self.fresh_users = itertools.count()
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(
                target=self.run, args=(random.Random(n), kinds), name=f"load-{'-'.join(kinds)}"
            )
            for n, kinds in enumerate(self.MIXES)
        ]

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        if self.errors:
            raise self.errors[0]
        stuck = [thread.name for thread in self.threads if thread.is_alive()]
        assert not stuck, f"requests still waiting 30 s after the load stopped: {stuck}"

    def run(self, rng: random.Random, kinds: list[str]) -> None:
        try:
            while not self.stop.is_set():
                self.one(rng.choice(kinds), rng.choice(USERS))
                if "login" not in kinds and "protected" not in kinds:
                    time.sleep(0.005)  # session-free requests: a sample, not a GIL hog
        except BaseException as exc:  # reported by __exit__
            self.errors.append(exc)

    def one(self, kind: str, user: str) -> None:
        site = self.site
        started = time.monotonic()
        if kind == "login":
            # A new user each time: these sessions are not the ones we track.
            fresh = f"fresh{next(self.fresh_users)}@example.com"
            response = site.request("POST", "/login", form={"key": fresh})
            user = fresh
        elif kind == "anonymous":
            response = site.request("GET", "/public")
            user = ""
        else:
            response = site.request("GET", f"/{kind}", user)
        elapsed = time.monotonic() - started
        outcome = Outcome(
            kind,
            user or None,
            started,
            elapsed,
            response.status_code,
            tuple(response.headers.getall("Set-Cookie")),
            response.text[:200],
        )
        with self.lock:
            self.outcomes.append(outcome)

    def between(self, start: float, end: float) -> list[Outcome]:
        """Requests wholly inside [start, end]."""
        return [o for o in self.outcomes if o.started >= start and o.started + o.elapsed <= end]


def answered(o: Outcome, cookies: dict[str, str]) -> bool:
    """Whether ``o`` is what a working store gives: served, to the user who asked."""
    if o.kind == "login":
        return o.status == 303 and len(o.set_cookies) == 1
    if o.kind in ("static", "anonymous"):
        return o.status == 200
    if o.status != 200:
        return False
    assert o.user is not None
    if o.kind == "sessions":  # the user's own sessions, the current one among them
        session_id = cookies[o.user].split(".")[1]
        return f'"id": "{session_id}"' in o.body
    return o.user in o.body
