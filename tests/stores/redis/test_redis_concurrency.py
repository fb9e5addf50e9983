"""The Redis store under threads: concurrent logins, touches racing revocations, eviction
past the cap, refreshes that write once. (Races of processes: test_races_*.py; the Redis
store's other tests: see test_redis_app.py.)"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pyramid_jeff import RedisStore, SessionManager
from pyramid_jeff.credentials import Credential, key_digest

from ...helpers import Clock
from ..helpers import run_together
from .helpers import Commands

pytestmark = pytest.mark.usefixtures("redis_client")


def test_concurrent_logins_lose_nothing(redis_url: str, redis_client: Any) -> None:
    store = RedisStore.from_url(redis_url)
    manager = SessionManager(store, max_sessions=1000)
    created: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(25):
                session, _ = manager.create("shared::key@example.com")
                with lock:
                    created.append(session.id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    run_together(threading.Thread(target=worker) for _ in range(8))
    assert errors == []
    listed = {s.id for s in manager.sessions("shared::key@example.com")}
    assert len(created) == 200
    assert listed == set(created)


def test_concurrent_touches_and_revokes(redis_url: str, redis_client: Any) -> None:
    clock = Clock()
    store = RedisStore.from_url(redis_url)
    manager = SessionManager(store, max_sessions=100, clock=clock)
    pairs = [manager.create("racer@example.com") for _ in range(10)]
    clock.advance(61)
    victims = {s.id for s, _ in pairs[:5]}
    barrier = threading.Barrier(len(pairs) + 1)

    def toucher(credential: Credential) -> None:
        barrier.wait()
        manager.verify(credential)

    def revoker() -> None:
        barrier.wait()
        for session_id in victims:
            manager.revoke("racer@example.com", session_id)

    threads = [threading.Thread(target=toucher, args=(c,)) for _, c in pairs]
    threads.append(threading.Thread(target=revoker))
    run_together(threads)
    survivors = manager.sessions("racer@example.com")
    assert {s.id for s in survivors} == {s.id for s, _ in pairs[5:]}
    assert all(s.last_seen_ms == clock.now for s in survivors)  # each touch did write


def test_eviction_past_max_sessions_is_atomic_and_prunes_the_dead(
    redis_url: str, redis_client: Any
) -> None:
    clock = Clock()
    store = RedisStore.from_url(redis_url)
    manager = SessionManager(store, max_sessions=3, idle_timeout=600, clock=clock)
    stale = manager.create("bob@example.com")[0]
    clock.advance(601)  # the first one is now idle-dead
    keep = []
    for _ in range(3):
        keep.append(manager.create("bob@example.com")[0])
        clock.advance(1)
    hash_key = store.hash_key(key_digest("bob@example.com"))
    assert stale.id.encode() not in redis_client.hkeys(hash_key)  # pruned, not counted
    assert {s.id for s in manager.sessions("bob@example.com")} == {s.id for s in keep}
    newest = manager.create("bob@example.com")[0]
    assert {s.id for s in manager.sessions("bob@example.com")} == {
        keep[1].id,
        keep[2].id,
        newest.id,
    }


def test_concurrent_refreshes_write_once(redis_url: str, redis_client: Any) -> None:
    clock = Clock()
    store = RedisStore.from_url(redis_url)
    manager = SessionManager(store, clock=clock)
    _, credential = manager.create("bob@example.com")
    store.load_scripts()
    clock.advance(61)
    with Commands(redis_client) as refresh:
        # Five requests that all read the stale last_seen before any of them refreshed it.
        for _ in range(5):
            store.touch(
                credential.key_digest,
                credential.session_id,
                clock.now,
                min_interval_ms=manager.touch_interval_ms,
            )
    assert refresh.counts["evalsha"] == 5
    assert refresh.counts["hset"] == 1
