"""SQL-specific behaviour on SQLite, PostgreSQL and MariaDB: the table, statements per
operation, locking under concurrency, independence from the application's transaction,
outages and the sweep. (The rules every store shares are in test_store_contract.py.)"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pyramid_jeff import deadline
from pyramid_jeff.credentials import key_digest, new_session_id
from pyramid_jeff.errors import StoreUnavailable
from pyramid_jeff.manager import SessionManager
from pyramid_jeff.session import Session, pack_meta
from pyramid_jeff.sql_store import SQLStore, jeff_sessions, make_table

from .conftest import clean_store_url
from .tcp_proxy import TcpProxy

ALICE = "alice@example.com"
HOUR = 3_600_000
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
    return Session(
        key=key,
        id=new_session_id(),
        created_ms=created,
        last_seen_ms=created if last_seen is None else last_seen,
        expires_ms=created + lifetime,
        token_digest=secrets.token_bytes(32),
    )


def add(store: SQLStore, s: Session, *, max_sessions: int = 32, now: int = T0) -> int:
    return store.create(
        key_digest(s.key), s, max_sessions=max_sessions, now_ms=now, idle_timeout_ms=0
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


def row_count(engine: sa.Engine, table: str = "jeff_sessions") -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


class Statements:
    """The SQL statements the store sends, recorded with ``before_cursor_execute``."""

    def __init__(self, store: SQLStore) -> None:
        self.engine = store._given_engine
        self.sent: list[str] = []

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
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
        == 0
    )
    assert len(store.list(shared)) == 2


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
    first = session()
    add(store, first, max_sessions=2)
    with Statements(store) as login:
        add(store, session(created=T0 + 1), max_sessions=2)
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
    # At the cap: one DELETE for the evicted, in the same transaction.
    with Statements(store) as at_cap:
        assert add(store, session(created=T0 + 2), max_sessions=2) == 1
    verbs = [v for v in at_cap.verbs() if v != "SELECT"]
    assert verbs[-3:] == ["DELETE", "INSERT", "COMMIT"]
    assert at_cap.verbs().count("COMMIT") == 1
    assert store.get(key_digest(ALICE), first.id) is None  # the oldest went


def test_logout_and_revoke_all_are_one_delete(store: SQLStore) -> None:
    sessions = [session(created=T0 + i) for i in range(4)]
    for s in sessions:
        add(store, s)
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
    with Statements(store) as everyone:
        assert (
            store.revoke_all(digest, keep=sessions[1].id, now_ms=T0, idle_timeout_ms=0, key=ALICE)
            == 2
        )
    assert everyone.verbs() == ["DELETE"]
    assert [s.id for s in store.list(digest)] == [sessions[1].id]


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
    evicted: list[int] = []
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

    def watch() -> None:  # the committed row count, sampled from outside the store
        start.wait()
        while not done.is_set():
            most[0] = max(most[0], row_count(raw))
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
    survivors = {s.id for s in store.list(digest)}
    assert len(survivors) == cap
    assert survivors <= {s.id for s in made}
    assert most[0] <= cap
    # Every login was stored, and each one that is gone was evicted by a later login.
    assert sum(evicted) == len(made) - cap
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


def test_concurrent_touches_and_revokes_never_resurrect(store: SQLStore) -> None:
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
            assert store.revoke(digest, s.id, now_ms=T0, idle_timeout_ms=0)
    finally:
        stop.set()
        for toucher in touchers:
            toucher.join(30)
    assert errors == []
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
