"""The upgrade of a table made before tombstones (no ``ended`` column): added at start-up,
nobody logged out, an earlier release still running beside it, and an ALTER that fails.
(The SQL store's other tests: see test_sql_schema.py.)"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from pyramid_jeff.credentials import (
    Credential,
    key_digest,
    new_session_id,
    new_token,
    token_digest,
)
from pyramid_jeff.errors import StoreUnavailable
from pyramid_jeff.manager import SessionManager
from pyramid_jeff.stores.sql import SQLStore, jeff_sessions

from ..helpers import ALICE, T0, session
from .helpers import Statements, add, bulk_rows


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
