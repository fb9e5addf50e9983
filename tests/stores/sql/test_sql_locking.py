"""Locking in the SQL store: concurrent logins, touches and revocations of one key, a
refused login that releases its key's lock, and independence from the application's own
transaction. (The SQL store's other tests: see test_sql_schema.py.)"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from pyramid_jeff.credentials import key_digest
from pyramid_jeff.errors import TooManySessions
from pyramid_jeff.session import Session
from pyramid_jeff.stores.sql import SQLStore, jeff_sessions

from ..helpers import ALICE, HOUR, T0, Touchers, run_together, session
from .helpers import Statements, add, bulk_insert, live_ids, row_count


def test_concurrent_logins_at_the_cap_never_exceed_it_nor_lose_one(
    sql_url: str, raw: sa.Engine
) -> None:
    # Atomicity, not speed: a generous timeout, so that eight writers queueing for
    # SQLite's one write lock on a loaded machine are not mistaken for an outage.
    store = SQLStore.from_url(sql_url, timeout=10.0)
    cap, threads, per_thread = 5, 8, 6
    digest = key_digest(ALICE)
    created = iter(range(T0, T0 + 10_000))
    lock = threading.Lock()
    made: list[Session] = []
    evicted: list[list[str]] = []
    errors: list[BaseException] = []
    most = [0]
    done = threading.Event()
    start = threading.Barrier(threads + 1)

    def log_in() -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                with lock:
                    s = session(created=next(created))
                n = store.create(
                    digest, s, max_sessions=cap, now_ms=s.created_ms, idle_timeout_ms=0
                )
                with lock:
                    made.append(s)
                    evicted.append(n)
        except BaseException as exc:
            errors.append(exc)

    def watch() -> None:  # the committed live rows, sampled from outside the store
        start.wait()
        while not done.is_set():
            most[0] = max(most[0], row_count(raw, where="WHERE ended IS NULL"))
            time.sleep(0.001)  # let the writers have the GIL

    workers = [threading.Thread(target=log_in) for _ in range(threads)]
    watcher = threading.Thread(target=watch)
    for thread in [*workers, watcher]:
        thread.start()
    for worker in workers:
        worker.join(60)
    done.set()
    watcher.join(10)
    assert errors == []
    assert len(made) == threads * per_thread
    survivors = live_ids(store)
    assert len(survivors) == cap
    assert survivors <= {s.id for s in made}
    assert most[0] <= cap
    # Every login was stored, and each one that is gone was evicted by a later login,
    # named once by the login that evicted it.
    named = [session_id for ids in evicted for session_id in ids]
    assert len(named) == len(set(named)) == len(made) - cap
    assert set(named) == {s.id for s in made} - survivors
    store.close()


def test_concurrent_logins_of_an_empty_key_all_land(store: SQLStore) -> None:
    # MariaDB: both take the gap lock of the empty range and deadlock on their inserts;
    # the loser is retried. No login is lost, none fails.
    for round_ in range(5):
        key = f"round{round_}@example.com"
        start = threading.Barrier(6)
        errors: list[BaseException] = []

        def log_in(
            key: str = key,
            start: threading.Barrier = start,
            errors: list[BaseException] = errors,
        ) -> None:
            try:
                start.wait()
                add(store, session(key), max_sessions=10)
            except BaseException as exc:
                errors.append(exc)

        run_together((threading.Thread(target=log_in) for _ in range(6)), 30)
        assert errors == []
        assert len(store.list(key_digest(key))) == 6


@pytest.mark.parametrize("tombstone", [False, True], ids=["logout", "operator"])
def test_concurrent_touches_and_revokes_never_resurrect(store: SQLStore, tombstone: bool) -> None:
    """Three threads refresh sessions while they are revoked: deleted ones stay gone,
    tombstones stay tombstones (touch never rewrites one)."""
    digest = key_digest(ALICE)
    sessions = [session() for _ in range(20)]
    for s in sessions:
        add(store, s, max_sessions=100)
    with Touchers(store, digest, sessions, start=T0, count=3) as touchers:
        for s in sessions:
            assert store.revoke(digest, s.id, now_ms=T0, idle_timeout_ms=0, tombstone=tombstone)
        stones = {s.id: store.get(digest, s.id) for s in sessions}
        time.sleep(0.2)  # the touchers go on
    assert touchers.errors == []
    if tombstone:
        assert all(stone is not None and stone.ended == "revoked" for stone in stones.values())
        assert {s.id: s for s in store.list(digest)} == stones
    else:
        assert store.list(digest) == []
        assert all(store.get(digest, s.id) is None for s in sessions)


def test_a_refused_login_rolls_back_and_keeps_its_connection(
    store: SQLStore, raw: sa.Engine, sql_kind: str
) -> None:
    digest = key_digest(ALICE)
    full = [session(created=T0 + i) for i in range(2)]
    for s in full:
        add(store, s, max_sessions=2)
    dead = session(created=T0 - 2 * HOUR, lifetime=HOUR)  # would make room, were it a login
    bulk_insert(store, [dead])
    if store._sweeper is not None:
        store._sweeper.join(10)
    invalidated: list[object] = []
    sa.event.listen(store._given_engine, "invalidate", lambda *args: invalidated.append(args))
    refused = session(created=T0 + 2)
    with Statements(store) as sent, pytest.raises(TooManySessions) as info:
        add(store, refused, max_sessions=2, evict=False)
    assert info.value.key == ""  # raised bare: the manager knows the key
    verbs = sent.verbs()
    assert "ROLLBACK" in verbs
    assert not {"INSERT", "DELETE", "UPDATE", "COMMIT"} & set(verbs)
    if sql_kind == "mariadb":
        assert "release_lock" in sent.sent[-1].lower()
    assert invalidated == []  # an answer, not a failure: the connection goes back to the pool
    assert row_count(raw) == 3  # the dead row too: nothing written
    assert store.get(digest, refused.id) is None
    # The key's lock was released: the next login of the key goes through at once.
    started = time.monotonic()
    assert add(store, session(created=T0 + 3), max_sessions=3, evict=False) == []
    assert time.monotonic() - started < store.timeout


def test_an_aborted_application_transaction_keeps_the_login(
    store: SQLStore, sql_url: str, raw: sa.Engine, sql_kind: str
) -> None:
    import transaction
    from sqlalchemy.orm import Session as OrmSession
    from sqlalchemy.orm import sessionmaker
    from zope.sqlalchemy import register

    with raw.begin() as connection:
        connection.execute(sa.text("CREATE TABLE app_items (id INTEGER PRIMARY KEY)"))
        connection.execute(sa.text("INSERT INTO app_items (id) VALUES (1)"))
    factory = sessionmaker(bind=raw)
    manager = transaction.TransactionManager(explicit=True)
    db: OrmSession = factory()
    register(db, transaction_manager=manager)
    s = session()
    manager.begin()
    try:
        # The application's own work in its transaction (pyramid_tm's), which locks a row.
        if sql_kind != "sqlite":  # SQLite: one writer per file, an app write would lock us out
            db.execute(sa.text("UPDATE app_items SET id = 2 WHERE id = 1"))
        db.execute(sa.text("SELECT COUNT(*) FROM app_items")).scalar_one()
        started = time.monotonic()
        add(store, s)  # the login, while that transaction is open
        assert time.monotonic() - started < store.timeout
        assert store.get(key_digest(ALICE), s.id) == s
    finally:
        manager.abort()  # an exception view, a failed commit: pyramid_tm aborts
        db.close()
    with raw.connect() as connection:
        assert connection.execute(sa.text("SELECT id FROM app_items")).scalar_one() == 1
    assert store.get(key_digest(ALICE), s.id) == s
    assert row_count(raw) == 1


def test_an_open_application_transaction_on_our_table_does_not_block_a_login(
    store: SQLStore, raw: sa.Engine, sql_kind: str
) -> None:
    old = session()
    add(store, old)
    with raw.connect() as app:
        # An application transaction that read our table and stays open.
        app.execute(sa.select(jeff_sessions)).all()
        started = time.monotonic()
        new = session(created=T0 + 1)
        add(store, new)
        assert store.touch(key_digest(ALICE), old.id, T0 + 60_000, min_interval_ms=0)
        assert store.revoke(key_digest(ALICE), old.id, now_ms=T0, idle_timeout_ms=0)
        assert time.monotonic() - started < store.timeout
        app.rollback()
    assert [s.id for s in store.list(key_digest(ALICE))] == [new.id]
