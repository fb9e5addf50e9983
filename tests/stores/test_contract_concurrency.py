"""The store contract under threads: logins at the cap, touches racing revocations (the
suite: test_contract_reads.py)."""

from __future__ import annotations

import threading

from pyramid_jeff.credentials import key_digest
from pyramid_jeff.session import Session
from pyramid_jeff.stores import SessionStore

from .helpers import ALICE, Touchers, add, ids, now_ms, run_together, session


def test_concurrent_logins_at_the_cap_lose_nothing(any_store: SessionStore) -> None:
    cap, threads, per_thread = 6, 4, 5
    made: list[Session] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def log_in() -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                s = session(created=now_ms())
                add(any_store, s, max_sessions=cap)
                with lock:
                    made.append(s)
        except BaseException as exc:  # reported below
            errors.append(exc)

    run_together((threading.Thread(target=log_in) for _ in range(threads)), 60)
    assert not errors
    assert len(made) == threads * per_thread
    survivors = ids(any_store)
    assert len(survivors) == cap
    assert survivors <= {s.id for s in made}
    # A login evicts only older ones, so the newest of all survives.
    last = max(made, key=lambda s: (s.created_ms, s.id))
    assert last.id in survivors


def test_concurrent_touches_never_resurrect_a_revoked_session(any_store: SessionStore) -> None:
    t = now_ms()
    digest = key_digest(ALICE)
    sessions = [session(created=t) for _ in range(20)]
    for s in sessions:
        add(any_store, s, max_sessions=100)
    with Touchers(any_store, digest, sessions, start=t) as toucher:
        for s in sessions:
            assert any_store.revoke(digest, s.id, now_ms=t, idle_timeout_ms=0)
    assert not toucher.errors
    assert any_store.list(digest) == []
    assert all(any_store.get(digest, s.id) is None for s in sessions)
