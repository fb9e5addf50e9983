"""What the SQL store's tests share: logins by a fixed clock, rows written behind the
store's back, counts, and the statements a store sends."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pyramid_jeff.credentials import key_digest
from pyramid_jeff.session import Session
from pyramid_jeff.stores.sql import SQLStore

from ...tcp_proxy import TcpProxy
from .. import helpers
from ..helpers import ALICE, T0

NETWORKED = pytest.mark.parametrize("sql_kind", ["postgresql", "mariadb"])


def add(store: SQLStore, s: Session, *, now: int = T0, **kw: Any) -> list[str]:
    """:func:`tests.stores.helpers.add` by the clock ``T0`` unless told."""
    return helpers.add(store, s, now=now, **kw)


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


def proxied(url: str, proxy: TcpProxy) -> str:
    return (
        make_url(url).set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False)
    )


def upstream(url: str) -> tuple[str, int]:
    parsed = make_url(url)
    return str(parsed.host), int(parsed.port or (5432 if "postgres" in url else 3306))


def socket_nobody_listens_on() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: connections are refused
