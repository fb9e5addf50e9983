"""Outages of the SQL store: a database unreachable at start-up, cut, frozen or locked is
unavailable within the timeout and the request's budget, and nothing is lost; a
programming error is not an outage. (The SQL store's other tests: see
test_sql_schema.py.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from pyramid_jeff import deadline
from pyramid_jeff.credentials import key_digest, new_session_id
from pyramid_jeff.errors import StoreUnavailable
from pyramid_jeff.stores.sql import SQLStore, jeff_sessions

from ...tcp_proxy import TcpProxy
from ..helpers import ALICE, T0, session
from .helpers import NETWORKED, Statements, add, proxied, socket_nobody_listens_on, upstream


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
