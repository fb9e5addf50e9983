"""SQL-specific behaviour on SQLite, PostgreSQL and MariaDB: the table, statements per
operation, locking under concurrency, independence from the application's transaction,
outages, the sweep, tombstones and the revoke_everyone cutoff in SQL, the upgrade of a
table made before tombstones, and stats. (The rules every store shares are in
test_store_contract.py.)"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pyramid_jeff import deadline
from pyramid_jeff.credentials import (
    Credential,
    key_digest,
    new_session_id,
    new_token,
    token_digest,
)
from pyramid_jeff.errors import StoreUnavailable, TooManySessions
from pyramid_jeff.manager import SessionManager
from pyramid_jeff.session import TOMBSTONE_MS, Session, pack_meta
from pyramid_jeff.stores.sql import SQLStore, jeff_sessions, make_table

from .conftest import clean_store_url
from .helpers import stored_session
from .tcp_proxy import TcpProxy

ALICE = "alice@example.com"
HOUR = 3_600_000
DAY = 24 * HOUR
T0 = 1_800_000_000_000  # a fixed "now": every test decides liveness by its own clock


SQL_STORES = ("sqlite", "postgresql", "mariadb")
NETWORKED = pytest.mark.parametrize("sql_kind", ["postgresql", "mariadb"])


@pytest.fixture(params=SQL_STORES)
def sql_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sql_url(request: pytest.FixtureRequest, sql_kind: str) -> str:
    """A database of this test's own (conftest's ``sqlite_url``, ``postgresql_url``...)."""
    return clean_store_url(request, sql_kind)


@pytest.fixture
def store(sql_url: str) -> Iterator[SQLStore]:
    made = SQLStore.from_url(sql_url)
    yield made
    made.close()


@pytest.fixture
def raw(sql_url: str) -> Iterator[sa.Engine]:
    """An engine of the test's own on the same database (what an application has)."""
    engine = sa.create_engine(sql_url)
    yield engine
    engine.dispose()


def session(
    key: str = ALICE, *, created: int = T0, lifetime: int = HOUR, last_seen: int | None = None
) -> Session:
    return stored_session(key, created=created, lifetime=lifetime, last_seen=last_seen)


def add(
    store: SQLStore, s: Session, *, max_sessions: int = 32, now: int = T0, evict: bool = True
) -> list[str]:
    return store.create(
        key_digest(s.key), s, max_sessions=max_sessions, now_ms=now, idle_timeout_ms=0, evict=evict
    )


def bulk_rows(sessions: list[Session]) -> list[dict[str, Any]]:
    return [
        {
            "key_digest": key_digest(s.key),
            "session_id": s.id,
            "session_key": s.key,
            "token_digest": s.token_digest,
            "created_ms": s.created_ms,
            "last_seen_ms": s.last_seen_ms,
            "expires_ms": s.expires_ms,
            "ip": None,
            "user_agent": None,
            "meta": s.packed_meta,
        }
        for s in sessions
    ]


def bulk_insert(store: SQLStore, sessions: list[Session]) -> None:
    with store.engine.connect() as connection:
        connection.execute(sa.insert(store.table), bulk_rows(sessions))
        connection.commit()


def row_count(engine: sa.Engine, table: str = "jeff_sessions", where: str = "") -> int:
    query = f"SELECT COUNT(*) FROM {table} {where}"
    with engine.connect() as connection:
        return int(connection.execute(sa.text(query)).scalar_one())


def live_ids(store: SQLStore, key: str = ALICE) -> set[str]:
    """The key's stored sessions, but tombstones."""
    return {s.id for s in store.list(key_digest(key)) if s.ended is None}


class Statements:
    """The SQL statements the store sends from this thread, recorded with
    ``before_cursor_execute`` (the automatic sweep's own thread is not counted)."""

    def __init__(self, store: SQLStore | sa.Engine) -> None:
        self.engine = store if isinstance(store, sa.Engine) else store._given_engine
        self.sent: list[str] = []
        self.thread = threading.get_ident()

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.get_ident() == self.thread:
            self.sent.append(" ".join(statement.split()))

    def __enter__(self) -> Statements:
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)

    def verbs(self) -> list[str]:
        return [s.split()[0].upper() for s in self.sent]


# -- the table ------------------------------------------------------------------------


def test_the_table_is_created_when_missing_with_its_key_and_indexes(
    sql_url: str, raw: sa.Engine
) -> None:
    assert not sa.inspect(raw).has_table("jeff_sessions")
    SQLStore.from_url(sql_url).close()
    inspector = sa.inspect(raw)
    columns = {c["name"]: c for c in inspector.get_columns("jeff_sessions")}
    assert set(columns) == {
        "key_digest",
        "session_id",
        "session_key",
        "token_digest",
        "created_ms",
        "last_seen_ms",
        "expires_ms",
        "ip",
        "user_agent",
        "meta",
        "ended",
    }
    assert inspector.get_pk_constraint("jeff_sessions")["constrained_columns"] == [
        "key_digest",
        "session_id",
    ]
    indexed = {tuple(i["column_names"]) for i in inspector.get_indexes("jeff_sessions")}
    assert {("expires_ms",), ("last_seen_ms",)} <= indexed
    for name in ("created_ms", "last_seen_ms", "expires_ms"):
        assert isinstance(columns[name]["type"], sa.BigInteger)
    assert not any(columns[n]["nullable"] for n in ("session_key", "token_digest", "meta"))
    assert columns["ended"]["nullable"]  # so that adding it to an old table is cheap
    # A second store on the same database finds the table and keeps it.
    SQLStore.from_url(sql_url).close()
    assert sa.inspect(raw).has_table("jeff_sessions")


def test_the_importable_table_matches_the_created_one(
    store: SQLStore, raw: sa.Engine, sql_kind: str
) -> None:
    created = sa.Table("jeff_sessions", sa.MetaData(), autoload_with=raw)
    assert [c.name for c in created.columns] == [c.name for c in jeff_sessions.columns]
    assert [c.name for c in created.primary_key] == [c.name for c in jeff_sessions.primary_key]
    assert {tuple(c.name for c in i.columns) for i in created.indexes} == {
        tuple(c.name for c in i.columns) for i in jeff_sessions.indexes
    }
    for column in jeff_sessions.columns:
        reflected = created.c[column.name].type
        length = getattr(column.type, "length", None)
        if isinstance(column.type, sa.String) and sql_kind != "sqlite":  # SQLite: no lengths
            assert getattr(reflected, "length", None) == length, column.name
    # The importable Table reads and writes what the store wrote.
    s = session()
    add(store, s)
    with raw.connect() as connection:
        (row,) = connection.execute(sa.select(jeff_sessions)).all()
    assert (row.session_id, row.session_key, row.expires_ms) == (s.id, ALICE, s.expires_ms)


def test_a_custom_table_name(sql_url: str, raw: sa.Engine) -> None:
    store = SQLStore.from_url(sql_url, table="my_app_logins")
    try:
        s = session()
        add(store, s)
        assert store.get(key_digest(ALICE), s.id) == s
    finally:
        store.close()
    inspector = sa.inspect(raw)
    assert inspector.has_table("my_app_logins")
    assert not inspector.has_table("jeff_sessions")
    assert row_count(raw, "my_app_logins") == 1
    # make_table with an application's MetaData describes the same table.
    mine = make_table(sa.MetaData(), "my_app_logins")
    with raw.connect() as connection:
        assert connection.execute(sa.select(mine.c.session_id)).scalar_one() == s.id


def test_no_token_in_any_row(store: SQLStore, raw: sa.Engine) -> None:
    manager = SessionManager(store)
    credentials = [manager.create(ALICE, meta={"device": "phone"})[1] for _ in range(3)]
    with raw.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM jeff_sessions")).all()
    assert len(rows) == 3
    dump = b"".join(
        value if isinstance(value, bytes) else str(value).encode() for row in rows for value in row
    )
    digests = {bytes(row.token_digest) for row in rows}
    for credential in credentials:
        assert credential.session_id.encode() in dump  # the rows are these sessions
        assert credential.token.encode() not in dump
        assert hashlib.sha256(credential.token.encode()).digest() in digests


def test_keys_and_ids_compare_exactly_whatever_the_collation(store: SQLStore) -> None:
    # MariaDB's default collation is case- and accent-insensitive: the columns must not be.
    upper, lower = session("Bob@Example.com"), session("bob@example.com")
    shared = key_digest(ALICE)  # one digest for both (a collision), told apart by key
    store.create(shared, upper, max_sessions=1, now_ms=T0, idle_timeout_ms=0)
    store.create(shared, lower, max_sessions=1, now_ms=T0, idle_timeout_ms=0)
    assert {s.key for s in store.list(shared)} == {"Bob@Example.com", "bob@example.com"}
    assert store.get(shared, upper.id.swapcase()) is None
    assert store.get(shared.swapcase(), upper.id) is None
    assert not store.revoke(shared, upper.id, now_ms=T0, idle_timeout_ms=0, key="bob@example.com")
    assert (
        store.revoke_all(shared, keep=None, now_ms=T0, idle_timeout_ms=0, key="BOB@example.com")
        == []
    )
    assert len(store.list(shared)) == 2
    assert all(s.ended is None for s in store.list(shared))


# -- statements per operation ---------------------------------------------------------


def test_verify_is_one_select_whatever_the_sessions_of_the_key(store: SQLStore) -> None:
    many = [session(created=T0 + i) for i in range(1000)]
    bulk_insert(store, many)
    manager = SessionManager(store, max_sessions=1001, clock=lambda: T0 + 1000)
    credential = manager.create(ALICE)[1]
    with Statements(store) as verify:
        assert manager.verify(credential) is not None
        assert store.get(key_digest(ALICE), many[0].id) == many[0]
        assert store.get(key_digest(ALICE), many[-1].id) == many[-1]
    assert verify.verbs() == ["SELECT"] * 3
    assert all("WHERE" in s and "key_digest" in s and "session_id" in s for s in verify.sent)


def test_touch_is_one_update(store: SQLStore, sql_kind: str) -> None:
    s = session()
    add(store, s)
    digest = key_digest(ALICE)
    with Statements(store) as due:
        assert store.touch(digest, s.id, T0 + 60_000, min_interval_ms=60_000)
    assert len(due.sent) == 1
    # PostgreSQL: the UPDATE inside one WITH statement; elsewhere a plain UPDATE.
    assert due.verbs() == ["WITH" if sql_kind == "postgresql" else "UPDATE"]
    assert "UPDATE" in due.sent[0].upper()
    with Statements(store) as early:  # too recent: nothing written, still "exists"
        assert store.touch(digest, s.id, T0 + 60_001, min_interval_ms=60_000)
    got = store.get(digest, s.id)
    assert got is not None and got.last_seen_ms == T0 + 60_000
    with Statements(store) as gone:
        assert not store.touch(digest, new_session_id(), T0 + 120_000, min_interval_ms=0)
    if sql_kind == "sqlite":  # the conditional UPDATE, then a SELECT only when it wrote nothing
        assert early.verbs() == gone.verbs() == ["UPDATE", "SELECT"]
    else:  # MariaDB reports matched rows (CLIENT.FOUND_ROWS); PostgreSQL's WITH tells both
        assert len(early.sent) == len(gone.sent) == 1


def test_a_login_is_one_short_transaction(store: SQLStore, sql_kind: str) -> None:
    first, second = session(), session(created=T0 + 1)
    add(store, first, max_sessions=2)
    with Statements(store) as login:
        add(store, second, max_sessions=2)
    sent = login.sent
    if sql_kind == "mariadb":  # a named lock per key around the transaction
        assert "get_lock" in sent[0].lower() and "release_lock" in sent[-1].lower()
        sent = sent[1:-1]
    begin = {"sqlite": "BEGIN IMMEDIATE", "mariadb": "START TRANSACTION"}.get(sql_kind, "BEGIN")
    assert sent[0] == begin
    assert sent[-1] == "COMMIT"
    assert login.verbs().count("COMMIT") == 1
    middle = [s.split()[0] for s in sent[1:-1]]
    expected = ["SELECT", "SELECT", "INSERT"] if sql_kind == "postgresql" else ["SELECT", "INSERT"]
    assert middle == expected
    if sql_kind == "postgresql":
        assert "pg_advisory_xact_lock" in sent[1]
    if sql_kind != "sqlite":
        assert sent[-3].endswith("FOR UPDATE")
    # At the cap: one UPDATE makes the oldest an "evicted" tombstone, in the transaction.
    with Statements(store) as at_cap:
        assert add(store, session(created=T0 + 2), max_sessions=2) == [first.id]
    verbs = [v for v in at_cap.verbs() if v != "SELECT"]
    assert verbs[-3:] == ["UPDATE", "INSERT", "COMMIT"]
    assert at_cap.verbs().count("COMMIT") == 1
    evicted = store.get(key_digest(ALICE), first.id)
    assert evicted is not None and evicted.ended == "evicted"
    assert evicted.expires_ms == min(first.expires_ms, T0 + TOMBSTONE_MS)
    # Next time, the tombstone is deleted to make room and the oldest live one evicted:
    # one DELETE and one UPDATE, still in the one transaction.
    with Statements(store) as again:
        assert add(store, session(created=T0 + 3), max_sessions=2, now=T0 + 3) == [second.id]
    verbs = [v for v in again.verbs() if v != "SELECT"]
    assert verbs[-4:] == ["DELETE", "UPDATE", "INSERT", "COMMIT"]
    assert store.get(key_digest(ALICE), first.id) is None
    assert len(live_ids(store)) == 2


def test_logout_is_one_delete_and_revoke_all_one_statement_or_transaction(
    store: SQLStore, sql_kind: str
) -> None:
    sessions = [session(created=T0 + i) for i in range(4)]
    for s in sessions:
        add(store, s)
    dead = session(created=T0 - 2 * HOUR, lifetime=HOUR)
    add(store, dead)
    digest = key_digest(ALICE)
    with Statements(store) as logout:
        assert store.revoke(
            digest,
            sessions[0].id,
            now_ms=T0,
            idle_timeout_ms=0,
            token_digest=sessions[0].token_digest,
        )
    assert logout.verbs() == ["DELETE"]
    assert "RETURNING" in logout.sent[0]
    with Statements(store) as operator:
        assert store.revoke(digest, sessions[3].id, now_ms=T0, idle_timeout_ms=0, tombstone=True)
    assert operator.verbs() == ["UPDATE"]
    with Statements(store) as everyone:
        ended = store.revoke_all(
            digest, keep=sessions[1].id, now_ms=T0, idle_timeout_ms=0, key=ALICE
        )
    assert ended == [sessions[2].id]  # the tombstone made before is not live
    expected = {
        # The DELETE of the dead as a WITH clause of the UPDATE that makes tombstones.
        "postgresql": ["WITH"],
        "sqlite": ["BEGIN", "DELETE", "UPDATE", "COMMIT"],
        # No UPDATE ... RETURNING: the rows are read FOR UPDATE first.
        "mariadb": ["START", "SELECT", "DELETE", "UPDATE", "COMMIT"],
    }[sql_kind]
    assert everyone.verbs() == expected
    if sql_kind == "postgresql":
        assert "DELETE" in everyone.sent[0] and "RETURNING" in everyone.sent[0]
    stored = {s.id: s.ended for s in store.list(digest)}
    assert stored == {sessions[1].id: None, sessions[2].id: "revoked", sessions[3].id: "revoked"}


# -- concurrency ----------------------------------------------------------------------


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

        workers = [threading.Thread(target=log_in) for _ in range(6)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
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
    stop = threading.Event()
    errors: list[BaseException] = []

    def touch() -> None:
        seen = T0
        try:
            while not stop.is_set():
                seen += 1
                for s in sessions:
                    store.touch(digest, s.id, seen, min_interval_ms=0)
        except BaseException as exc:
            errors.append(exc)

    touchers = [threading.Thread(target=touch) for _ in range(3)]
    for toucher in touchers:
        toucher.start()
    try:
        for s in sessions:
            assert store.revoke(digest, s.id, now_ms=T0, idle_timeout_ms=0, tombstone=tombstone)
        stones = {s.id: store.get(digest, s.id) for s in sessions}
        time.sleep(0.2)  # the touchers go on
    finally:
        stop.set()
        for toucher in touchers:
            toucher.join(30)
    assert errors == []
    if tombstone:
        assert all(stone is not None and stone.ended == "revoked" for stone in stones.values())
        assert {s.id: s for s in store.list(digest)} == stones
    else:
        assert store.list(digest) == []
        assert all(store.get(digest, s.id) is None for s in sessions)


# -- beside the application's transaction ----------------------------------------------


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


# -- outages --------------------------------------------------------------------------


def proxied(url: str, proxy: TcpProxy) -> str:
    return (
        make_url(url).set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False)
    )


def upstream(url: str) -> tuple[str, int]:
    parsed = make_url(url)
    return str(parsed.host), int(parsed.port or (5432 if "postgres" in url else 3306))


@pytest.fixture
def network_url(sql_url: str) -> str:
    """A database behind a network (SQLite's lock is tested on its own)."""
    return sql_url


def test_an_unreachable_database_does_not_stop_the_application_starting(
    sql_kind: str, tmp_path: Path
) -> None:
    dead = socket_nobody_listens_on()
    url = {
        "sqlite": f"sqlite:///{tmp_path}/no/such/dir/x.db",
        "postgresql": f"postgresql+psycopg://postgres@127.0.0.1:{dead}/x",
        "mariadb": f"mysql+pymysql://root@127.0.0.1:{dead}/x",
    }[sql_kind]
    started = time.monotonic()
    store = SQLStore.from_url(url, timeout=0.5)  # no exception: the table waits
    try:
        with pytest.raises(StoreUnavailable, match=r"^sql: "):
            store.get(key_digest(ALICE), new_session_id())
        with deadline.store_budget(0.5):
            for _ in range(5):
                with pytest.raises(StoreUnavailable):
                    add(store, session())
                with pytest.raises(StoreUnavailable):
                    store.list(key_digest(ALICE))
        assert time.monotonic() - started < 0.5 + 1.0
    finally:
        store.close()


def socket_nobody_listens_on() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: connections are refused


@NETWORKED
def test_a_cut_database_is_unavailable_then_nothing_is_lost(network_url: str) -> None:
    proxy = TcpProxy(upstream(network_url))
    store = SQLStore.from_url(proxied(network_url, proxy), timeout=0.5)
    try:
        kept = [session(created=T0 + i) for i in range(3)]
        for s in kept:
            add(store, s)
        proxy.cut()
        started = time.monotonic()
        with deadline.store_budget(0.5):
            for call in (
                lambda: store.get(key_digest(ALICE), kept[0].id),
                lambda: add(store, session(created=T0 + 10)),
                lambda: store.revoke(key_digest(ALICE), kept[1].id, now_ms=T0, idle_timeout_ms=0),
                lambda: store.revoke_all(
                    key_digest(ALICE), keep=None, now_ms=T0, idle_timeout_ms=0
                ),
            ):
                with pytest.raises(StoreUnavailable):
                    call()
        assert time.monotonic() - started < 0.5 + 0.5
        proxy.restore()
        # The first call after the outage reconnects; nothing was destroyed.
        assert {s.id for s in store.list(key_digest(ALICE))} == {s.id for s in kept}
        assert store.get(key_digest(ALICE), kept[0].id) == kept[0]
    finally:
        store.close()
        proxy.close()


@NETWORKED
def test_a_frozen_database_connection_is_bounded(network_url: str) -> None:
    proxy = TcpProxy(upstream(network_url))
    store = SQLStore.from_url(proxied(network_url, proxy), timeout=0.8, pool_size=2)
    try:
        kept = session()
        add(store, kept)  # the pool holds a live connection now
        if store._sweeper is not None:
            store._sweeper.join(5)  # the automatic sweep after that login, done
        proxy.freeze()
        # Inside a request: the calls together end within the budget.
        started = time.monotonic()
        with deadline.store_budget(0.5) as budget:
            with pytest.raises(StoreUnavailable):
                store.get(key_digest(ALICE), kept.id)
            with pytest.raises(StoreUnavailable, match="budget is spent"):
                store.list(key_digest(ALICE))
        elapsed = time.monotonic() - started
        assert 0.45 <= elapsed < 0.5 + 0.3
        assert budget.remaining() == 0
        # Outside a request: one call ends within its timeout (+ the watchdog's grace).
        proxy.thaw()
        assert store.get(key_digest(ALICE), kept.id) == kept  # a warm connection again
        proxy.freeze()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="no answer within"):
            store.touch(key_digest(ALICE), kept.id, T0 + 60_000, min_interval_ms=0)
        assert time.monotonic() - started < 0.8 + 0.25 + 0.3
        proxy.thaw()
        assert store.get(key_digest(ALICE), kept.id) is not None  # nothing lost
        assert len(store.list(key_digest(ALICE))) == 1
    finally:
        proxy.thaw()
        store.close()
        proxy.close()


@pytest.mark.parametrize("sql_kind", ["sqlite"])
def test_a_locked_sqlite_database_is_bounded(sql_url: str, sql_kind: str) -> None:
    store = SQLStore.from_url(sql_url, timeout=2.0)
    holder = sa.create_engine(sql_url, isolation_level="AUTOCOMMIT")
    try:
        kept = session()
        add(store, kept)
        with holder.connect() as other:
            other.exec_driver_sql("BEGIN IMMEDIATE")  # another writer holds the lock
            started = time.monotonic()
            with deadline.store_budget(0.5), pytest.raises(StoreUnavailable):
                add(store, session(created=T0 + 1))
            assert 0.45 <= time.monotonic() - started < 0.5 + 0.3
            assert store.get(key_digest(ALICE), kept.id) == kept  # WAL: reads go on
            other.exec_driver_sql("ROLLBACK")
        add(store, session(created=T0 + 2))
        assert len(store.list(key_digest(ALICE))) == 2
    finally:
        store.close()
        holder.dispose()


def test_a_spent_budget_sends_no_statement(store: SQLStore) -> None:
    with Statements(store) as none, deadline.store_budget(0.0):
        with pytest.raises(StoreUnavailable, match="budget is spent"):
            store.get(key_digest(ALICE), new_session_id())
        with pytest.raises(StoreUnavailable, match="budget is spent"):
            add(store, session())
    assert none.sent == []


@NETWORKED  # SQLite reports a missing table as an OperationalError
def test_a_programming_error_is_not_an_outage(store: SQLStore, raw: sa.Engine) -> None:
    kept = session()
    add(store, kept)
    jeff_sessions.drop(raw)  # a migration gone wrong, not an outage
    with pytest.raises(sa.exc.DBAPIError) as info:
        store.get(key_digest(ALICE), kept.id)
    assert not isinstance(info.value, StoreUnavailable)
    assert isinstance(info.value, sa.exc.ProgrammingError)
    jeff_sessions.create(raw)
    add(store, session())  # and the store works on
    assert len(store.list(key_digest(ALICE))) == 1


def test_from_url_rejects_what_it_cannot_use(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an SQLAlchemy database URL"):
        SQLStore.from_url("no url at all")
    with pytest.raises(ValueError, match="no SQLAlchemy dialect or driver"):
        SQLStore.from_url("postgresql+nosuchdriver://u@h/db")
    with pytest.raises(ValueError, match="no SQLAlchemy dialect or driver"):
        SQLStore.from_url("nosuchdb://u@h/db")
    with pytest.raises(ValueError, match="in-memory SQLite"):
        SQLStore.from_url("sqlite://")
    with pytest.raises(ValueError, match="timeout"):
        SQLStore.from_url(f"sqlite:///{tmp_path}/x.db", timeout=0)


# -- the sweep ------------------------------------------------------------------------


def test_sweep_deletes_exactly_the_dead_in_batches(store: SQLStore) -> None:
    now, idle = T0 + 2 * HOUR, 30 * 60_000
    expired = [session(f"e{i}@x", created=T0, lifetime=HOUR) for i in range(7_000)]
    idle_dead = [session(f"i{i}@x", created=T0, lifetime=10 * HOUR) for i in range(3_000)]
    live = [
        session(f"l{i}@x", created=T0, lifetime=10 * HOUR, last_seen=now - 60_000)
        for i in range(50)
    ]
    bulk_insert(store, expired + idle_dead + live)
    if store.family == "postgresql":
        # The statistics autovacuum keeps: fresh from a bulk insert there are none, and
        # the planner filters the batch's 1,000 keys over every dead row.
        with store.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE jeff_sessions")
    with Statements(store) as swept:
        assert store.sweep(now, idle, batch=1_000) == 10_000
    deletes = [s for s in swept.sent if s.upper().startswith("DELETE")]
    assert len(deletes) == 10  # 10,000 dead rows, 1,000 a batch
    remaining = {s.id for s in live}
    assert {s.id for s in store.list(key_digest("l0@x"))} == {live[0].id}
    assert store.sweep(now, idle, batch=1_000) == 0
    with store.engine.connect() as connection:
        ids = set(connection.execute(sa.select(store.table.c.session_id)).scalars())
    assert ids == remaining
    # Without an idle timeout only the expired go; max_batches bounds one call.
    more = [session(f"m{i}@x", created=T0, lifetime=HOUR) for i in range(300)]
    bulk_insert(store, more)
    assert store.sweep(now, 0, batch=100, max_batches=2) == 200
    assert store.sweep(now, 0, batch=100) == 100


def test_the_automatic_sweep_deletes_one_batch_per_interval(
    store: SQLStore, raw: sa.Engine
) -> None:
    dead = [session(f"d{i}@x", created=T0 - 2 * HOUR, lifetime=HOUR) for i in range(2_000)]
    bulk_insert(store, dead)
    store.auto_sweep_batch = 500
    store.auto_sweep_interval = 3_600.0

    def login() -> None:
        add(store, session(created=T0))
        if store._sweeper is not None:
            store._sweeper.join(10)

    login()
    assert row_count(raw) == 2_000 - 500 + 1
    login()  # within the interval: no sweep
    assert row_count(raw) == 2_000 - 500 + 2
    store._next_auto_sweep = 0.0  # the interval has passed
    login()
    assert row_count(raw) == 2_000 - 1_000 + 3


def test_the_automatic_sweep_never_judges_idleness(store: SQLStore, sql_url: str) -> None:
    # Two applications share the table: one with a short idle timeout, one without. The
    # first one's logins must not sweep the second one's idle-but-live sessions.
    patient = SessionManager(store, clock=lambda: T0)
    _, kept = patient.create("bob@example.com")
    other = SQLStore.from_url(sql_url)
    try:
        hasty = SessionManager(other, idle_timeout=60, clock=lambda: T0 + 10 * 60_000)
        hasty.create(ALICE)
        if other._sweeper is not None:
            other._sweeper.join(10)
        assert patient.verify(kept) is not None
    finally:
        other.close()


def test_meta_and_details_round_trip(store: SQLStore) -> None:
    s = Session(
        key="Zoë <zoe@example.com>",
        id=new_session_id(),
        created_ms=T0,
        last_seen_ms=T0,
        expires_ms=T0 + HOUR,
        ip="2001:db8::1",
        user_agent="Mozilla/5.0 — naïve 🦊",
        packed_meta=pack_meta({"b": b"\x00\xff", "n": 3}),
        token_digest=secrets.token_bytes(32),
    )
    add(store, s)
    got = store.get(key_digest(s.key), s.id)
    assert got == s
    assert got is not None and got.meta == {"b": b"\x00\xff", "n": 3}
    assert got.token_digest == s.token_digest


# -- tombstones and the revoke_everyone cutoff ------------------------------------------


def test_verify_reads_the_cutoff_in_its_one_select(store: SQLStore) -> None:
    digest = key_digest(ALICE)
    before = session(created=T0)
    add(store, before)
    store.revoke_everyone(now_ms=T0 + 10)
    after = session(created=T0 + 20)
    add(store, after, now=T0 + 20)
    with Statements(store) as verify:
        stone = store.get(digest, before.id)
        assert stone == before.tombstone("revoked", T0 + 10)
        assert stone is not None and stone.ended == "revoked"
        assert store.get(digest, after.id) == after
    assert verify.verbs() == ["SELECT", "SELECT"]
    assert all("everyone" in sent for sent in verify.sent)  # the cutoff, read inside
    # The manager tells the revoked one from the live one, from that one read each.
    early = SessionManager(store, clock=lambda: T0 + 30)
    token = new_token()
    logged_in_before = replace(session(created=T0 + 5), token_digest=token_digest(token))
    bulk_insert(store, [logged_in_before])  # e.g. a login of a server whose clock is behind
    assert early.verify(Credential(digest, logged_in_before.id, token)) is None


def test_every_operation_sees_the_cutoff(store: SQLStore) -> None:
    digest = key_digest(ALICE)
    old = [session(created=T0 + i, lifetime=DAY) for i in range(4)]
    for s in old:
        add(store, s)
    store.revoke_everyone(now_ms=T0 + 10)
    now = T0 + 20
    assert not store.touch(digest, old[0].id, now + HOUR, min_interval_ms=0)
    stone = store.get(digest, old[0].id)
    assert stone is not None and stone.last_seen_ms == old[0].last_seen_ms  # not written
    assert not store.revoke(digest, old[0].id, now_ms=now, idle_timeout_ms=0, tombstone=True)
    assert store.get(digest, old[0].id) == stone  # no tombstone of its own: unchanged
    # A logout of a revoked session ended nothing live, and deletes it all the same.
    assert not store.revoke(
        digest, old[1].id, now_ms=now, idle_timeout_ms=0, token_digest=old[1].token_digest
    )
    assert store.get(digest, old[1].id) is None
    # revoke_all ends nothing, and keeps what the cutoff ended (they read as tombstones).
    assert store.revoke_all(digest, keep=None, now_ms=now, idle_timeout_ms=0) == []
    assert {s.id: s.ended for s in store.list(digest)} == {
        old[0].id: "revoked",
        old[2].id: "revoked",
        old[3].id: "revoked",
    }
    # A login at the cap counts none of them live: they make room, nobody is evicted.
    new = session(created=now)
    assert add(store, new, max_sessions=2, now=now) == []
    assert {s.id for s in store.list(digest)} == {new.id}
    assert store.touch(digest, new.id, now + 60_000, min_interval_ms=0)


def test_revoke_everyone_is_one_upsert_that_keeps_the_later_cutoff(
    store: SQLStore, raw: sa.Engine
) -> None:
    add(store, session())
    with Statements(store) as cut:
        store.revoke_everyone(now_ms=T0 + 10)
    assert cut.verbs() == ["INSERT"]
    for now, kept in ((T0 + 5, T0 + 10), (T0 + 20, T0 + 20), (T0 + 15, T0 + 20)):
        with Statements(store) as again:
            store.revoke_everyone(now_ms=now)
        assert again.verbs() == ["INSERT"]
        assert store.stats()["revoked_everyone_before_ms"] == kept
    assert row_count(raw) == 2  # one session, one cutoff: however many calls
    # Another store object (another process) reads the same cutoff.
    other = SQLStore(raw)
    try:
        assert other.stats()["revoked_everyone_before_ms"] == T0 + 20
        late = session(created=T0 + 20)  # created at the cutoff: ended too
        bulk_insert(other, [late])
        got = other.get(key_digest(ALICE), late.id)
        assert got is not None and got.ended == "revoked"
    finally:
        other.close()


def test_the_cutoff_survives_every_sweep(store: SQLStore, raw: sa.Engine) -> None:
    store.revoke_everyone(now_ms=T0 + 10)
    bulk_insert(store, [session(created=T0, lifetime=HOUR), session(created=T0 + 20)])
    far = 2**62
    assert store.sweep(far, 1) == 2  # every session, by expiry and by idleness
    assert row_count(raw) == 1
    # An operator's own DELETE of expired rows spares it too.
    with raw.begin() as connection:
        connection.execute(sa.delete(jeff_sessions).where(jeff_sessions.c.expires_ms <= far))
    assert store.stats()["revoked_everyone_before_ms"] == T0 + 10
    older = session(created=T0 + 5)
    bulk_insert(store, [older])
    got = store.get(key_digest(ALICE), older.id)
    assert got is not None and got.ended == "revoked"
    assert store.list(key_digest(ALICE)) == [got]  # the cutoff's row is no session of a key


def test_a_tombstone_is_swept_at_its_own_expiry_never_for_idleness(store: SQLStore) -> None:
    digest = key_digest(ALICE)
    old, new = session(created=T0, lifetime=30 * DAY), session(created=T0 + 1)
    add(store, old, max_sessions=1)
    assert add(store, new, max_sessions=1, now=T0 + 1) == [old.id]
    idle = 60_000
    # Two hours on, `new` is idle-dead and goes; the tombstone (as idle) stays.
    assert store.sweep(T0 + 2 * HOUR, idle) == 1
    stone = store.get(digest, old.id)
    assert stone is not None and stone.ended == "evicted"
    assert stone.expires_ms == T0 + 1 + TOMBSTONE_MS
    assert store.sweep(T0 + TOMBSTONE_MS, idle) == 0
    assert store.sweep(T0 + 1 + TOMBSTONE_MS, idle) == 1
    assert store.list(digest) == []


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


# -- the upgrade of a table made before tombstones --------------------------------------


def old_table(metadata: sa.MetaData) -> sa.Table:
    """The sessions table as releases before tombstones made it: no ``ended``."""
    columns = [
        sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
        for c in jeff_sessions.columns
        if c.name != "ended"
    ]
    return sa.Table(
        "jeff_sessions",
        metadata,
        *columns,
        sa.Index("ix_jeff_sessions_expires_ms", "expires_ms"),
        sa.Index("ix_jeff_sessions_last_seen_ms", "last_seen_ms"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


def test_an_old_table_is_upgraded_and_nobody_is_logged_out(sql_url: str, raw: sa.Engine) -> None:
    old = old_table(sa.MetaData())
    old.create(raw)
    token = new_token()
    logged_in = replace(session(created=T0), token_digest=token_digest(token))
    with raw.begin() as connection:
        connection.execute(sa.insert(old), bulk_rows([logged_in]))
    engine = sa.create_engine(sql_url)
    try:
        with Statements(engine) as start:
            store = SQLStore(engine)
        altered = [s for s in start.sent if s.upper().startswith("ALTER TABLE")]
        assert len(altered) == 1 and "ended" in altered[0]
        columns = {c["name"]: c for c in sa.inspect(raw).get_columns("jeff_sessions")}
        assert columns["ended"]["nullable"]
        # The session from before the upgrade still verifies, as it was.
        manager = SessionManager(store, clock=lambda: T0 + 1)
        assert manager.verify(Credential(key_digest(ALICE), logged_in.id, token)) is not None
        assert store.get(key_digest(ALICE), logged_in.id) == logged_in
        # A process of the earlier release, still running, writes as it did: sessions.
        theirs = session(created=T0 + 2)
        with raw.begin() as connection:
            connection.execute(sa.insert(old), bulk_rows([theirs]))
        assert store.get(key_digest(ALICE), theirs.id) == theirs
        assert add(store, session(created=T0 + 3), max_sessions=2, now=T0 + 3) == [logged_in.id]
        store.close()
        # The next start finds the column: no ALTER.
        with Statements(engine) as again:
            SQLStore(engine).close()
        assert not any(s.upper().startswith("ALTER") for s in again.sent)
    finally:
        engine.dispose()


def test_a_column_another_process_added_meanwhile_is_no_error(
    sql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    SQLStore.from_url(sql_url).close()  # the table, with the column
    real = SQLStore._missing_columns
    checks: list[int] = []

    def stale_once(self: SQLStore, connection: sa.Connection) -> list[sa.Column[Any]]:
        # The first check runs before the other process's ALTER, the ALTER after it.
        checks.append(1)
        return [self.table.c.ended] if len(checks) == 1 else real(self, connection)

    monkeypatch.setattr(SQLStore, "_missing_columns", stale_once)
    store = SQLStore.from_url(sql_url)
    try:
        assert store._table_ready  # the failed ALTER was seen for what it was, at once
        assert len(checks) == 2
        s = session()
        add(store, s)
        assert store.get(key_digest(ALICE), s.id) == s
    finally:
        store.close()


def test_a_column_that_cannot_be_added_fails_loudly(
    sql_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    SQLStore.from_url(sql_url).close()
    # As if the ALTER were refused (no privilege): the column stays missing.
    monkeypatch.setattr(SQLStore, "_missing_columns", lambda self, c: [self.table.c.ended])
    failures = (sa.exc.DBAPIError, StoreUnavailable)
    with caplog.at_level(logging.ERROR, logger="pyramid_jeff.stores.sql"):
        try:
            store = SQLStore.from_url(sql_url)
        except failures:
            pass  # a programming error (PostgreSQL's class for it) stops the start-up
        else:
            try:
                # Or every call fails (an outage by the driver's error class): never a
                # silent run on a table without the column.
                for _ in range(2):
                    with pytest.raises(failures):
                        store.get(key_digest(ALICE), new_session_id())
                assert not store._table_ready
            finally:
                store.close()
    assert any("ALTER TABLE" in r.getMessage() for r in caplog.records)  # what to run


# -- stats ----------------------------------------------------------------------------


def test_stats_are_one_statement(store: SQLStore, sql_kind: str) -> None:
    empty = {
        "backend": "sql",
        "dialect": sql_kind,
        "table": "jeff_sessions",
        "records": 0,
        "tombstones": 0,
    }
    assert store.stats() == empty
    made = [session(created=T0 + i) for i in range(3)]
    for s in made:
        add(store, s, max_sessions=2)  # the third evicts the first
    bob = session("bob@example.com")
    add(store, bob)
    store.revoke(key_digest(bob.key), bob.id, now_ms=T0, idle_timeout_ms=0)  # a logout
    store.revoke_everyone(now_ms=T0 + 5)
    with Statements(store) as counted:
        facts = store.stats()
    assert counted.verbs() == ["SELECT"]
    assert facts == {**empty, "records": 3, "tombstones": 1, "revoked_everyone_before_ms": T0 + 5}
