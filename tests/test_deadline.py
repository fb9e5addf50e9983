"""One store budget per request, measured through a slow proxy in front of a real Redis.

With every Redis reply 0.7 s late and ``jeff.redis.socket_timeout = 1.0``, each request
must answer within the budget (plus the app's own work): a 503 once the budget is spent,
never a 500, never a ``Set-Cookie`` on a 503. New connections cost no handshake round
trip, and scripts are loaded with the first script call, in the same round trip.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import webtest

from pyramid_jeff import RedisStore, SessionManager, StoreUnavailable
from pyramid_jeff.credentials import key_digest
from pyramid_jeff.testing import jeff_policy

from .app import make_wsgi_app
from .conftest import HTTPS
from .helpers import cookie_value, set_cookies
from .slow_proxy import SlowProxy

DELAY = 0.7
BUDGET = 1.0
MARGIN = 0.5  # a loaded 2-core machine: the app's own work and thread scheduling


@pytest.fixture
def proxy(redis_url: str, redis_client: Any) -> Iterator[SlowProxy]:
    parts = urlsplit(redis_url)
    server = SlowProxy((parts.hostname or "127.0.0.1", parts.port or 6379))
    yield server
    server.close()


def slow_app(proxy: SlowProxy) -> webtest.TestApp:
    """A new app (so a new, empty connection pool) whose store is behind the proxy."""
    wsgi = make_wsgi_app(
        {
            "jeff.store": proxy.url(),
            "jeff.login_url": "/login",
            "jeff.redis.socket_timeout": str(BUDGET),
            "jeff.redis.socket_connect_timeout": str(BUDGET),
        }
    )
    return webtest.TestApp(wsgi, extra_environ=dict(HTTPS))


def log_in(app: webtest.TestApp, key: str, cookie: str | None = None) -> str:
    headers = {"Cookie": f"__Host-jeff={cookie}"} if cookie else {}
    response = app.post("/login", {"key": key}, headers=headers, status=303)
    app.reset()  # the next login is another browser's
    return cookie_value(set_cookies(response)[0])


def timed(call: Any) -> tuple[webtest.TestResponse, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_within_budget(response: webtest.TestResponse, elapsed: float) -> None:
    assert elapsed < BUDGET + MARGIN, f"{response.status} after {elapsed:.2f} s"
    assert response.status_int in (200, 303, 503), response.status
    if response.status_int == 503:
        assert not set_cookies(response)
        assert response.headers["Retry-After"]


def test_every_request_answers_within_its_store_budget(proxy: SlowProxy) -> None:
    setup = slow_app(proxy)
    alice = log_in(setup, "alice@example.com")
    bob = log_in(setup, "bob@example.com")
    proxy.delay = DELAY
    app = slow_app(proxy)  # every request below starts with a new connection

    # One HGET on a new connection: one slow round trip, well within the budget.
    response, elapsed = timed(
        lambda: app.get("/protected", headers={"Cookie": f"__Host-jeff={alice}"}, status="*")
    )
    assert_within_budget(response, elapsed)
    assert response.status_int == 200 and response.text == "secret for alice@example.com"

    # A login: one script call (the scripts load in the same round trip).
    fresh = slow_app(proxy)
    response, elapsed = timed(lambda: fresh.post("/login", {"key": "carol@example.com"}))
    assert_within_budget(response, elapsed)
    assert response.status_int == 303 and set_cookies(response)

    # HGET, then a last_seen refresh is due: two round trips do not fit in the budget.
    manager = jeff_policy(app.app.registry).manager
    real_clock = manager.clock
    manager.clock = lambda: real_clock() + 120_000
    try:
        response, elapsed = timed(
            lambda: app.get("/protected", headers={"Cookie": f"__Host-jeff={alice}"}, status="*")
        )
    finally:
        manager.clock = real_clock
    assert_within_budget(response, elapsed)
    assert response.status_int == 503

    # A login that also ends another key's session: the new session, then the old one.
    response, elapsed = timed(
        lambda: app.post(
            "/login",
            {"key": "alice@example.com"},
            headers={"Cookie": f"__Host-jeff={bob}"},
            status="*",
        )
    )
    assert_within_budget(response, elapsed)
    # Either the login fails whole (503, no cookie) or the budget ran out only while
    # ending the old session, which is then the application's to retry or log.
    assert response.status_int in (303, 503)


def test_a_new_connection_costs_no_handshake_round_trip(proxy: SlowProxy) -> None:
    store = RedisStore.from_url(proxy.url())
    assert store.get(key_digest("alice@example.com"), "x" * 22) is None
    (connection,) = proxy.connections
    assert connection.commands() == ["HGET", "ZSCORE"]  # the session and the cutoff
    assert connection.bursts == 1
    store.close()


def test_another_database_costs_one_select(proxy: SlowProxy) -> None:
    store = RedisStore.from_url(proxy.url(db=1))
    assert store.get(key_digest("alice@example.com"), "x" * 22) is None
    (connection,) = proxy.connections
    assert connection.commands() == ["SELECT", "HGET", "ZSCORE"]
    store.close()


def test_scripts_load_with_the_first_script_call_and_after_a_flush(
    proxy: SlowProxy, redis_client: Any
) -> None:
    store = RedisStore.from_url(proxy.url())
    manager = SessionManager(store)
    manager.create("alice@example.com")
    (connection,) = proxy.connections
    assert connection.commands() == ["SCRIPT LOAD"] * 4 + ["EVALSHA"]
    assert connection.bursts == 1  # one round trip
    manager.revoke_all("alice@example.com")
    assert connection.commands()[5:] == ["EVALSHA"]
    redis_client.script_flush()  # what a restart or a failover does
    manager.create("alice@example.com")
    manager.revoke_all("alice@example.com")
    commands = connection.commands()[6:]
    assert commands == ["EVALSHA"] + ["SCRIPT LOAD"] * 4 + ["EVALSHA", "EVALSHA"]
    assert connection.bursts == 5
    assert "EVAL" not in connection.commands()
    store.close()


def test_outside_a_request_each_call_has_its_own_timeout(proxy: SlowProxy) -> None:
    store = RedisStore.from_url(proxy.url(), socket_timeout=BUDGET)
    manager = SessionManager(store)
    proxy.delay = DELAY
    started = time.monotonic()
    manager.create("alice@example.com")  # a script, say
    assert manager.revoke_all("alice@example.com") == 1
    assert time.monotonic() - started >= 2 * DELAY  # more than one budget, and fine
    store.close()


def test_only_store_waits_count_against_the_budget(proxy: SlowProxy) -> None:
    from pyramid_jeff.deadline import store_budget

    store = RedisStore.from_url(proxy.url(), socket_timeout=BUDGET)
    manager = SessionManager(store)
    session, credential = manager.create("alice@example.com")
    proxy.delay = DELAY
    with store_budget(BUDGET) as budget:
        time.sleep(0.5)  # the application's own work
        assert manager.verify(credential) == session
        assert 0.1 < budget.left < BUDGET - DELAY + 0.05
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            manager.sessions("alice@example.com")  # a second round trip does not fit
        assert time.monotonic() - started < BUDGET - DELAY + MARGIN
        assert budget.left == 0
        with pytest.raises(StoreUnavailable, match="budget is spent"):
            manager.sessions("alice@example.com")
    store.close()


def test_a_spent_budget_sends_nothing(proxy: SlowProxy) -> None:
    from pyramid_jeff.deadline import store_budget

    store = RedisStore.from_url(proxy.url())
    with store_budget(0.0), pytest.raises(StoreUnavailable, match="budget is spent"):
        store.get(key_digest("alice@example.com"), "x" * 22)
    assert proxy.connections == []
    store.close()


def test_the_wait_for_a_pooled_connection_counts(redis_url: str, redis_client: Any) -> None:
    from pyramid_jeff.deadline import store_budget

    store = RedisStore.from_url(redis_url, socket_timeout=5.0, max_connections=1)
    pool = store.commands.pool
    assert pool is not None
    # The only connection is busy (redis-py < 5.3 wants a command name).
    held = (
        pool.get_connection("GET") if store.commands.pass_command_name else pool.get_connection()
    )
    try:
        started = time.monotonic()
        with store_budget(0.3), pytest.raises(StoreUnavailable):
            store.get(key_digest("alice@example.com"), "x" * 22)
        assert time.monotonic() - started < 0.3 + MARGIN
    finally:
        pool.release(held)
    assert store.get(key_digest("alice@example.com"), "x" * 22) is None
    store.close()


def test_connecting_counts() -> None:
    from pyramid_jeff.deadline import store_budget

    # A listener that never accepts, its queue full: a new connect hangs.
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):  # fill the accept queue so new connects stall
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        store = RedisStore.from_url(
            f"redis://127.0.0.1:{port}/0", socket_timeout=5.0, socket_connect_timeout=5.0
        )
        started = time.monotonic()
        with store_budget(0.3), pytest.raises(StoreUnavailable):
            store.get(key_digest("alice@example.com"), "x" * 22)
        assert time.monotonic() - started < 0.3 + MARGIN
        store.close()
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_a_connection_used_in_a_request_gets_its_own_timeout_back(proxy: SlowProxy) -> None:
    from pyramid_jeff.deadline import store_budget

    store = RedisStore.from_url(proxy.url(), socket_timeout=BUDGET)
    digest = key_digest("alice@example.com")
    with store_budget(0.2):  # a request connects and uses the connection
        assert store.get(digest, "x" * 22) is None
    proxy.delay = DELAY  # then a script, on the same connection: its own 1 s timeout
    assert store.get(digest, "x" * 22) is None
    assert len(proxy.connections) == 1
    store.close()
