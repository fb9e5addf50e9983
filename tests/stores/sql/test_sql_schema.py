"""The SQL store's table on SQLite, PostgreSQL and MariaDB: its columns, keys and indexes,
the importable Table, a name of the application's choice, what a row holds (no token) and
how it compares, and the URLs ``from_url`` refuses.

The SQL store's other tests: the statements per operation (test_sql_statements.py),
locking and the application's transaction (test_sql_locking.py), outages
(test_sql_outages.py), the sweep (test_sql_sweep.py), tombstones and the revoke_everyone
cutoff (test_sql_cutoff.py), the upgrade of a table made before tombstones
(test_sql_upgrade.py). The rules every store shares are in tests/stores/test_contract_*.py.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import pytest
import sqlalchemy as sa

from pyramid_jeff.credentials import key_digest, new_session_id
from pyramid_jeff.manager import SessionManager
from pyramid_jeff.session import Session, pack_meta
from pyramid_jeff.stores.sql import SQLStore, jeff_sessions, make_table

from ..helpers import ALICE, HOUR, T0, session
from .helpers import add, row_count


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
