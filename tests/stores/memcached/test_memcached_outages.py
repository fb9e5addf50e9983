"""Memcached outages: a dead server fails every call at once, a frozen one within the
socket timeout and the request's budget, nothing lost; and the URLs the store takes and
refuses. (The memcached store's other tests: see test_memcached_layout.py.)"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from pyramid_jeff import SessionManager, StoreUnavailable, deadline
from pyramid_jeff.stores.memcached import MemcachedStore

from ...helpers import Clock
from ...memcached_server import MemcachedServer


def test_a_dead_server_fails_every_call_quickly(private: MemcachedServer) -> None:
    store = MemcachedStore.from_url(private.url)
    clock = Clock()
    manager = SessionManager(store, clock=clock)
    session, credential = manager.create("bob@example.com")
    private.kill()
    clock.advance(61)
    calls: list[Callable[[], object]] = [
        lambda: store.get(credential.key_digest, session.id),
        lambda: manager.create("bob@example.com"),
        lambda: store.touch(credential.key_digest, session.id, clock.now),
        lambda: manager.revoke_all("bob@example.com"),
        lambda: manager.sessions("bob@example.com"),
        lambda: manager.revoke("bob@example.com", session.id),
        lambda: store.revoke_everyone(now_ms=clock.now),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="memcached"):
            call()
        assert time.monotonic() - started < 1.0  # refused at once: no retry loop
    facts = store.stats()  # an operator's view: names the server, raises nothing
    assert f"{private.url.removeprefix('memcached://')} error" in facts
    private.restart()  # an empty memcached: the session is gone, calls work again
    assert manager.verify(credential) is None


def test_a_frozen_server_is_bounded_by_the_timeout_and_the_budget(
    private: MemcachedServer,
) -> None:
    store = MemcachedStore.from_url(private.url, socket_timeout=0.5)
    manager = SessionManager(store)
    session, credential = manager.create("bob@example.com")
    private.pause()
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.get(credential.key_digest, session.id)
        elapsed = time.monotonic() - started
        assert 0.4 < elapsed < 1.5  # the socket timeout, not forever

        started = time.monotonic()
        with deadline.store_budget(0.3):
            for call in (
                lambda: manager.verify(credential),
                lambda: manager.create("bob@example.com"),
                lambda: manager.sessions("bob@example.com"),
            ):
                with pytest.raises(StoreUnavailable):
                    call()
        assert time.monotonic() - started < 0.8  # three calls share 0.3 s
    finally:
        private.resume()
    assert manager.verify(credential) == session  # nothing was lost by the freeze


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("memcached://", "without a host"),
        ("memcached://:11211", "without a host"),
        ("memcached://127.0.0.1:port", "bad port"),
        ("memcached://127.0.0.1:0", "bad port"),
        ("memcached://127.0.0.1:65536", "bad port"),
        ("memcached://a:1,,b:2", "without a host"),
        ("memcached://127.0.0.1:11211/0", "no path"),
        ("memcached://127.0.0.1:11211?timeout=1", "no path"),
        ("memcached://user:pw@127.0.0.1", "no user"),
        ("memcached://a:1,a:1", "twice"),
        ("redis://127.0.0.1:6379", "not a memcached"),
        ("memcached://[::1", "IPv6"),
    ],
)
def test_malformed_urls(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        MemcachedStore.from_url(url)


def test_well_formed_urls() -> None:
    store = MemcachedStore.from_url("memcached://a,b:1,[::1]:2/")
    assert sorted(node.address for node in store.nodes.values()) == [
        ("::1", 2),
        ("a", 11211),
        ("b", 1),
    ]
