"""The memcached store under threads: concurrent logins, touches racing a revocation,
revoke_all racing logins, revoke_alls racing each other. (The memcached store's other
tests: see test_memcached_layout.py.)"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from pyramid_jeff import SessionManager, StoreUnavailable
from pyramid_jeff.credentials import Credential, key_digest
from pyramid_jeff.session import unpack_record
from pyramid_jeff.stores.memcached import GEN_BYTES, PREFIX_BYTES, MemcachedStore

from ...helpers import Clock
from ...memcached_server import MemcachedServer
from ..helpers import run_together
from .helpers import raw_client


@pytest.mark.parametrize(("threads", "cap"), [(16, 8), (16, 64)])
def test_concurrent_logins_lose_nothing(
    store: MemcachedStore, memcached: MemcachedServer, threads: int, cap: int
) -> None:
    manager = SessionManager(store, max_sessions=cap)
    created: list[Credential] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def login() -> None:
        barrier.wait()
        try:
            _, credential = manager.create("shared@example.com")
            with lock:
                created.append(credential)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    run_together(threading.Thread(target=login) for _ in range(threads))
    assert errors == []
    listed = {s.id for s in manager.sessions("shared@example.com")}
    assert len(listed) == min(threads, cap)
    assert listed <= {c.session_id for c in created}
    verified = {c.session_id for c in created if manager.verify(c) is not None}
    assert verified == listed  # every listed session works, every unlisted one is gone


def test_concurrent_touch_and_revoke_never_resurrect(
    store: MemcachedStore, memcached: MemcachedServer
) -> None:
    clock = Clock()
    manager = SessionManager(store, clock=clock)
    digest = key_digest("racer@example.com")
    for _ in range(30):
        session, credential = manager.create("racer@example.com")
        clock.advance(61)
        barrier = threading.Barrier(3)
        outcome: dict[str, Any] = {}

        def toucher(
            name: str, session_id: str, barrier: threading.Barrier, outcome: dict[str, Any]
        ) -> None:
            barrier.wait()
            outcome[name] = store.touch(digest, session_id, clock.now)

        def revoker(session_id: str, barrier: threading.Barrier, outcome: dict[str, Any]) -> None:
            barrier.wait()
            outcome["revoked"] = manager.revoke("racer@example.com", session_id)

        workers = [
            threading.Thread(target=toucher, args=(f"t{i}", session.id, barrier, outcome))
            for i in range(2)
        ]
        workers.append(threading.Thread(target=revoker, args=(session.id, barrier, outcome)))
        run_together(workers)
        assert outcome["revoked"] is True
        assert manager.check(credential) == (None, "revoked")
        stone = store.get(digest, session.id)
        assert stone is not None and stone.ended == "revoked"
        assert store.touch(digest, session.id, clock.now + 120_000) is False
        assert store.get(digest, session.id) == stone  # the touch changed nothing
    assert manager.sessions("racer@example.com") == []


def test_concurrent_revoke_all_and_logins_leave_no_unlisted_session(
    store: MemcachedStore, memcached: MemcachedServer
) -> None:
    manager = SessionManager(store, max_sessions=6)
    digest = key_digest("target@example.com")
    created: list[Credential] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def login() -> None:
        while not stop.is_set():
            try:
                created.append(manager.create("target@example.com")[1])
            except StoreUnavailable:
                pass  # lost to a revocation: refused, never silently lost
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    def revoke_all() -> None:
        while not stop.is_set():
            manager.revoke_all("target@example.com")

    workers = [threading.Thread(target=login) for _ in range(4)]
    workers += [threading.Thread(target=revoke_all) for _ in range(2)]
    for worker in workers:
        worker.start()
    time.sleep(1.5)
    stop.set()
    for worker in workers:
        worker.join()
    assert errors == []
    assert len(created) > 20
    # Every session that still works is listed...
    listed = {s.id for s in manager.sessions("target@example.com")}
    working = {c.session_id for c in created if manager.verify(c) is not None}
    assert working == listed
    # ...also by what memcached holds: no live item of this generation outside the index
    # (read by knowing every id ever created).
    client = raw_client(memcached)
    marker = client.get(store.marker_key(digest))
    names = {store.item_key(digest, c.session_id): c.session_id for c in created}
    values = client.get_many(list(names))
    client.close()
    current = {
        names[name]
        for name, value in values.items()
        if value
        and value[:GEN_BYTES] == marker[:GEN_BYTES]
        and unpack_record(names[name], value[PREFIX_BYTES:]).ended is None  # no tombstone
    }
    assert current == listed
    # So one more revoke_all ends every login.
    assert manager.revoke_all("target@example.com") == len(listed)
    assert all(manager.verify(c) is None for c in created)


def test_concurrent_revoke_alls_name_each_session_once(
    store: MemcachedStore, memcached: MemcachedServer
) -> None:
    manager = SessionManager(store, max_sessions=100)
    digest = key_digest("bob@example.com")
    made = {manager.create("bob@example.com")[0].id for _ in range(30)}
    barrier = threading.Barrier(3)
    results: list[list[str]] = []

    def revoke_all() -> None:
        barrier.wait()
        now = time.time_ns() // 1_000_000
        results.append(store.revoke_all(digest, keep=None, now_ms=now, idle_timeout_ms=0))

    run_together(threading.Thread(target=revoke_all) for _ in range(3))
    named = [session_id for ended in results for session_id in ended]
    assert sorted(named) == sorted(made)  # every one, by exactly one of the calls
    assert {s.ended for s in store.list(digest)} == {"revoked"}
